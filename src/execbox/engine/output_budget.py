"""One execution's output budget (``EXECBOX_MAX_RESULT_BYTES``), shared by all its stages.

Each stream is capped by its stage's ``output_bytes``, but an execution has up to
``MAX_CASES`` runs: without a total, 64 cases of 16 MiB per stream make the server hold 2 GiB
for one request. So each stage runs with a per-stream cap no larger than what is left of the
budget (the sandbox stops keeping output past it and ends the program), and what the stage
kept is taken from the budget. The two streams together may still pass what was left (each
was capped alone): the stage is then cut to fit. Once the budget is spent, later stages run
with a cap of 0: a run that writes nothing is judged as usual, one that writes anything is an
``output_limit`` naming the budget, so a case can never pass on output it was not allowed.
The interleaved ``output`` is the same bytes in another order: it is not counted again, and
is cut to no more than the stage's two streams.
"""

from __future__ import annotations

import dataclasses

from execbox.config import Limits
from execbox.engine.model import StageReport, Status

SETTING = "EXECBOX_MAX_RESULT_BYTES"


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


class OutputBudget:
    """The output one execution may still keep, over all its stages and test cases."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total

    def message(self) -> str:
        return (
            f"output limit exceeded: an execution keeps at most {self.total} bytes of output "
            f"over all its stages and test cases ({SETTING}), and this stage reached that"
        )

    def cap(self, limits: Limits) -> Limits:
        """``limits`` with a per-stream output cap no larger than what is left."""
        if limits.output_bytes <= self.left:
            return limits
        return dataclasses.replace(limits, output_bytes=self.left)

    def charge(self, report: StageReport, capped: bool, is_run: bool) -> StageReport:
        """Take ``report``'s output from the budget, cut to what is left. ``capped``: the stage
        ran under a cap the budget lowered, so an output limit it hit is the budget's."""
        room = self.left
        sizes = [len(report.stdout), len(report.stderr)]
        over = sum(sizes) > room
        if over:
            out, err = fair_shares(sizes, room)
            report = dataclasses.replace(
                report,
                stdout=cut(report.stdout, out),
                stderr=cut(report.stderr, err),
                stdout_truncated=report.stdout_truncated or out < sizes[0],
                stderr_truncated=report.stderr_truncated or err < sizes[1],
            )
        kept = len(report.stdout) + len(report.stderr)
        if report.output is not None and len(report.output) > kept:
            report = dataclasses.replace(report, output=cut(report.output, kept))
        self.left -= kept
        if capped and report.status is Status.OUTPUT_LIMIT:
            return dataclasses.replace(report, message=self.message())
        if not over:
            return report
        # A compile's status decides whether anything runs, so it stays; a run cut short of
        # what it wrote is an output limit (its output is not what the program wrote).
        if is_run and report.status is Status.OK:
            return dataclasses.replace(report, status=Status.OUTPUT_LIMIT, message=self.message())
        why = f"output cut to the {self.total} bytes an execution keeps ({SETTING})"
        message = f"{report.message}; {why}" if report.message else why
        return dataclasses.replace(report, message=message)
