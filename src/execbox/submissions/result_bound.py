"""A bound on the output a stored result keeps (``EXECBOX_MAX_RESULT_BYTES``).

The engine already keeps at most this much output per execution (see
``execbox.engine.output_budget``): this is the last line of defence before the store, for a
result that did not come through that bound. It replays the same budget over the stages in
order, so a result within the bound is stored as it is, and one past it is cut the way the
engine cuts: earlier stages keep their output, later ones are cut, and a cut run that was
``ok`` becomes ``output_limit`` (it must not pass its test case).
"""

from __future__ import annotations

import dataclasses

from execbox.engine import ExecutionResult, Status
from execbox.engine.output_budget import OutputBudget


def bound_result(result: ExecutionResult, max_bytes: int) -> ExecutionResult:
    """``result`` with at most ``max_bytes`` of output (stdout and stderr) over all its
    stages; each stage's interleaved ``output`` no longer than its two streams."""
    budget = OutputBudget(max_bytes)
    compile_ = result.compile
    if compile_ is not None:
        compile_ = budget.charge(compile_, capped=False, is_run=False)
    runs = result.cases or ([result.run] if result.run is not None else [])
    new_runs = [budget.charge(run, capped=False, is_run=True) for run in runs]
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
