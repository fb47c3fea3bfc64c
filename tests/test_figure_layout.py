"""The static figures are readable: no tick labels printed on top of each other (log
and linear count axes alike), and no empty band between the panels and the legend."""
import pytest

from edgeprune.report import load_runs
from edgeprune.report.figures import static_figures
from edgeprune.report.render_static import render_static

from fake_runs import make_run


def _overlaps(boxes) -> bool:
    boxes = sorted(boxes, key=lambda b: b.x0)
    return any(a.x1 > b.x0 + 0.5 for a, b in zip(boxes, boxes[1:]))


@pytest.mark.parametrize("models, rates", [
    (("resnet20", "resnet56"), (0.3, 0.6)),           # a linear parameters axis up to 853k
    (("resnet20", "resnet56"), (0.3, 0.62)),          # a log axis over ~1.3 decades, like the quickstart's
    (("resnet20", "mobilenet_v2", "vgg11"), (0.3, 0.6, 0.8))])    # a log axis over 3 decades
def test_cost_axes_labels_do_not_collide_and_the_legend_sits_beside_the_panels(tmp_path, models, rates):
    import matplotlib.pyplot as plt
    run = make_run(tmp_path / "run", models=models, algorithms=("l1", "fpgm"), rates=rates)
    fig = render_static(static_figures(load_runs([run]).trials)["accuracy_vs_cost"])
    try:
        fig.set_dpi(130)                  # as write_figures saves them
        renderer = fig.canvas.get_renderer()
        fig.canvas.draw()
        for ax in fig.axes:
            labels = [t for t in ax.get_xticklabels() + ax.get_xticklabels(minor=True)
                      if t.get_text() and t.get_visible()]
            boxes = [t.get_window_extent(renderer) for t in labels]
            assert boxes and not _overlaps(boxes), [t.get_text() for t in ax.get_xticklabels()]
        legend = fig.legends[0].get_window_extent(renderer)
        right = max(ax.get_window_extent(renderer).x1 for ax in fig.axes)
        assert 0 <= legend.x0 - right < 0.08 * fig.bbox.width      # beside the panels, no wide gap
    finally:
        plt.close(fig)
