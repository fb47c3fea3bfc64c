"""The torch-free timing core (edgeprune.measure.timing)."""


def test_identical_timings_still_have_a_confidence_interval_of_half_a_tick():
    """Timings equal at the clock's resolution say the median is known to a tick, not exactly."""
    from edgeprune.measure.timing import TICK_MS, percentile_stats
    st = percentile_stats([0.02] * 30)
    assert st["ci_rel"] == TICK_MS / 2 / 0.02 > 0
