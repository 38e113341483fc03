"""A program's output against the expected output, compared as judges do (Judge0's rule)."""

from __future__ import annotations


def normalized(text: bytes) -> bytes:
    """The text without trailing whitespace on any line, nor at its end."""
    return b"\n".join(line.rstrip() for line in text.split(b"\n")).rstrip()


def output_matches(output: bytes, expected: bytes) -> bool:
    return normalized(output) == normalized(expected)
