"""What allocated trials share (sensitivity maps, runtime profiles, latency models),
measured once per run on Ray before the trials start: one task per model measures
what that model's trials need, the driver keeps the results in RUN/allocation/ and
hands them to every trial. Without this, workers starting allocated trials of the
same model at once would each measure the same map."""
from __future__ import annotations

from ...run import RunFolder
from ..allocation_inputs import input_key, input_path, needed
from ..plan import TrialSpec
from ..unpruned import model_key
from .ray_worker import context


def missing_inputs(job) -> dict[str, list[tuple[str, TrialSpec]]]:
    """model key -> the (kind, spec) its trials need that the run folder does not hold
    yet, in the order they are measured (a latency model needs the runtime profile)."""
    run = RunFolder(job.options.run_dir)
    out: dict[str, list] = {}
    seen = set()
    for task in job.tasks:
        spec = task.spec
        for kind in needed(job.settings, spec):
            key = input_key(job.settings, kind, spec)
            if key in seen or input_path(run, job.settings, kind, spec).is_file():
                continue
            seen.add(key)
            out.setdefault(model_key(spec), []).append((kind, spec))
    return out


def inputs_task(wanted: list[tuple[str, TrialSpec]], shared: dict, packed_data: dict, adapted: dict) -> dict:
    """On a worker: measure what one model's allocated trials need; key -> JSON."""
    ctx = context(shared, packed_data)
    ctx.models.adapted_states.update(adapted)
    out = {}
    for kind, spec in wanted:
        out[input_key(ctx.settings, kind, spec)] = ctx.allocation.measure(kind, spec, ctx.unpruned(spec))
    return out


def measure_inputs(ray, job, shared: dict, data_ref, adapted_ref, options: dict) -> dict:
    """Measure the missing inputs (a task per model, in parallel), store them in the run
    folder, and return key -> JSON for the trials. A failure is left to the trials that
    need the input: they measure it themselves, and record the same error."""
    from ..allocation_inputs import write
    wanted = missing_inputs(job)
    if not wanted:
        return {}
    remote = ray.remote(inputs_task).options(**options)
    refs = {m: remote.remote(items, shared, data_ref, adapted_ref) for m, items in wanted.items()}
    run, given = RunFolder(job.options.run_dir), {}
    for m, ref in refs.items():
        try:
            measured = ray.get(ref)
        except Exception:  # noqa: BLE001 - see the docstring
            continue
        for kind, spec in wanted[m]:
            key = input_key(job.settings, kind, spec)
            if key in measured:
                write(input_path(run, job.settings, kind, spec), measured[key])
                given[key] = measured[key]
    return given
