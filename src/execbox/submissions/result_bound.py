"""A bound on the output a stored result keeps (``EXECBOX_MAX_RESULT_BYTES``).

The engine already keeps at most this much output per execution (see
``execbox.engine.output_budget``): this is the last line of defence before the store, for a
result that did not come through that bound. It replays the same budget over the stages in
order, so a result within the bound is stored as it is, and one past it is cut the way the
engine cuts: earlier stages keep their output, later ones are cut, and a cut run that was
``ok`` becomes ``output_limit`` (it must not pass its test case).

Output files (``outputs``) count within the same bound, so that a stored result or a callback
body holds at most ``max_bytes`` of output and files together: once every stage's streams are
charged (which files never cut, so statuses stay the engine's), the files take what is left, in
stage and name order; a file past it is dropped and its run says ``max_bytes``.
"""

from __future__ import annotations

import dataclasses

from execbox.engine import ExecutionResult, StageReport, Status
from execbox.engine.output_budget import OutputBudget
from execbox.sandbox.outputs import MAX_BYTES, Outputs


def bound_result(result: ExecutionResult, max_bytes: int) -> ExecutionResult:
    """``result`` with at most ``max_bytes`` of output (stdout and stderr) and output files
    over all its stages; each stage's interleaved ``output`` no longer than its two streams."""
    budget = OutputBudget(max_bytes)
    compile_ = result.compile
    if compile_ is not None:
        compile_ = budget.charge(compile_, capped=False, is_run=False)
    runs = result.cases or ([result.run] if result.run is not None else [])
    new_runs = [budget.charge(run, capped=False, is_run=True) for run in runs]
    new_runs = [_bound_outputs(run, budget) for run in new_runs]
    status = result.status
    if status is Status.OK:
        status = next((r.status for r in new_runs if r.status is not Status.OK), Status.OK)
    return dataclasses.replace(
        result,
        status=status,
        compile=compile_,
        run=new_runs[0] if new_runs else None,
        cases=new_runs if result.cases else [],
    )


def _bound_outputs(report: StageReport, budget: OutputBudget) -> StageReport:
    """``report`` with only the output files that fit in what is left of ``budget``."""
    outputs = report.outputs
    if outputs is None or not outputs.files:
        return report
    kept = []
    for file in outputs.files:
        if len(file.content) <= budget.left:
            budget.left -= len(file.content)
            kept.append(file)
    if len(kept) == len(outputs.files):
        return report
    limits_hit = tuple(sorted({*outputs.limits_hit, MAX_BYTES}))
    bounded = Outputs(tuple(kept), limits_hit, outputs.collect_time_s)
    return dataclasses.replace(report, outputs=bounded)
