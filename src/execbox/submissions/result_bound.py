"""A bound on the output a stored result keeps (``EXECBOX_MAX_RESULT_BYTES``).

Each stream is bounded by its stage's ``output_bytes``, but a submission has up to
``MAX_CASES`` runs: without a total, 64 cases of 16 MiB per stream make a row SQLite refuses
(over 1 GB) and a response nobody can read. Past the bound, output is cut max-min fairly over
every stream of every stage: streams smaller than an equal share are kept whole, the biggest
ones are cut. A cut run that was ``ok`` becomes ``output_limit`` (its output is not what the
program wrote, so it must not pass a test case), with the ``*_truncated`` flags set and a
message naming the bound, as when a stream passes ``output_bytes``.
"""

from __future__ import annotations

import dataclasses

from execbox.engine import ExecutionResult, StageReport, Status

STREAMS = ("stdout", "stderr", "output")


def fair_shares(sizes: list[int], room: int) -> list[int]:
    """How much of each size to keep so that they add up to at most ``room``: the small ones
    whole, the rest an equal share of what is left."""
    shares = [0] * len(sizes)
    left = room
    by_size = sorted(range(len(sizes)), key=sizes.__getitem__)
    for position, index in enumerate(by_size):
        shares[index] = min(sizes[index], left // (len(by_size) - position))
        left -= shares[index]
    return shares


def cut(data: bytes, keep: int) -> bytes:
    """The first ``keep`` bytes at most, not ending inside a UTF-8 sequence (text output stays
    decodable: Judge0 answers 400 for text that is not UTF-8)."""
    if keep >= len(data):
        return data
    for _ in range(3):
        if keep > 0 and data[keep] & 0xC0 == 0x80:
            keep -= 1
    return data[:keep]


def bound_result(result: ExecutionResult, max_bytes: int) -> ExecutionResult:
    """``result`` with at most ``max_bytes`` of output over all its stages."""
    runs = result.cases or ([result.run] if result.run is not None else [])
    stages = ([result.compile] if result.compile is not None else []) + runs
    streams = [(i, name) for i, stage in enumerate(stages) for name in STREAMS]
    sizes = [len(getattr(stages[i], name) or b"") for i, name in streams]
    if sum(sizes) <= max_bytes:
        return result
    kept: dict[int, dict[str, bytes]] = {}
    for (i, name), size, share in zip(streams, sizes, fair_shares(sizes, max_bytes), strict=True):
        if share < size:
            kept.setdefault(i, {})[name] = cut(getattr(stages[i], name), share)
    bounded = [
        _cut_stage(stage, kept[i], max_bytes, is_run=stage is not result.compile)
        if i in kept
        else stage
        for i, stage in enumerate(stages)
    ]
    compile_ = bounded[0] if result.compile is not None else None
    new_runs = bounded[1:] if result.compile is not None else bounded
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


def _cut_stage(
    stage: StageReport, kept: dict[str, bytes], max_bytes: int, is_run: bool
) -> StageReport:
    why = (
        f"output cut: a submission's result keeps at most {max_bytes} bytes of output over "
        "all its stages and test cases (EXECBOX_MAX_RESULT_BYTES)"
    )
    status, message = stage.status, why
    # A compile's status decides whether anything ran, so it stays; a run cut short of what
    # it wrote is an output limit.
    if is_run and status is Status.OK:
        status = Status.OUTPUT_LIMIT
    elif stage.message:
        message = f"{stage.message}; {why}"
    return dataclasses.replace(
        stage,
        **kept,
        status=status,
        message=message,
        stdout_truncated=stage.stdout_truncated or "stdout" in kept,
        stderr_truncated=stage.stderr_truncated or "stderr" in kept,
    )
