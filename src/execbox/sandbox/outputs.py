"""Files a run gives back (``outputs``): what is asked, how names are matched, what is chosen.

Both backends read the files the same way and choose them by the same rule, so a request
gets the same answer from either: regular files only (never a symlink, FIFO, device or
socket, never through a symlinked directory), whose path relative to the work dir matches
one of the patterns; at most ``max_files + 1`` matches are gathered in the order the walk
finds them (one more than may come back, to tell that more matched), sorted by name, and
taken in that order: past ``max_files`` the rest are dropped ("max_files"), and a file that
would carry the total past ``max_bytes`` is left out ("max_bytes"; a smaller later one may
still fit). A name that is not UTF-8 or holds a control character never matches.

Patterns (checked by the engine before they get here) are relative paths whose parts are
shell-style wildcards: ``*`` (any characters but ``/``), ``?`` (one character but ``/``),
``[abc]``/``[a-z]``/``[!abc]``; a part that is exactly ``**`` matches any number of
directories (none included). ``*`` matches a leading dot too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# Why an answer holds fewer files than matched (StageResult.outputs.limits_hit).
MAX_FILES = "max_files"
MAX_BYTES = "max_bytes"
# The files could not be read back at all (Docker: the container was stopped for a limit
# before it could hand them over).
UNAVAILABLE = "unavailable"

# Entries a walk of the work dir visits at most, and how deep it goes: whatever the program
# left (100,000 files, a deep tree), the host's time and memory stay bounded.
MAX_WALK_ENTRIES = 16384
MAX_WALK_DEPTH = 32
# Per execution (over all its test cases): how long the Docker backend's containers may take,
# once their programs ended, to choose and send output files (outside the runs' own limits).
COLLECT_TIME_S = 10.0


@dataclass(frozen=True)
class OutputRequest:
    """The files a stage should give back, with the bounds for this stage."""

    patterns: tuple[str, ...]
    max_files: int
    max_bytes: int
    collect_time_s: float = COLLECT_TIME_S  # what the execution has left of COLLECT_TIME_S


@dataclass(frozen=True)
class OutputFile:
    name: str  # relative to the work dir
    content: bytes


@dataclass(frozen=True)
class Outputs:
    files: tuple[OutputFile, ...] = ()
    limits_hit: tuple[str, ...] = ()  # MAX_FILES, MAX_BYTES, UNAVAILABLE
    collect_time_s: float = field(default=0.0, compare=False)  # spent of COLLECT_TIME_S

    @property
    def truncated(self) -> bool:
        return bool(self.limits_hit)

    @property
    def size(self) -> int:
        return sum(len(f.content) for f in self.files)


def _part_regex(part: str) -> str:
    """One path part's wildcards as a regex (no match crosses a ``/``)."""
    out, i = [], 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := _class_end(part, i)) > 0:
            body = part[i + 1 : end]
            negated = body[:1] in ("!", "^")
            body = body[1:] if negated else body
            escaped = body.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
            escaped = escaped.replace("^", "\\^")
            out.append(f"[^/{escaped}]" if negated else f"(?!/)[{escaped}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _class_end(part: str, start: int) -> int:
    """Where the bracket expression opened at ``start`` closes (a ``]`` right after the
    opening or its ``!`` is a member), or -1: an unclosed ``[`` is a plain character."""
    i = start + 1
    if i < len(part) and part[i] in "!^":
        i += 1
    if i < len(part) and part[i] == "]":
        i += 1
    end = part.find("]", i)
    return end


def pattern_regex(pattern: str) -> str:
    """The regex a whole relative path must match for ``pattern``."""
    regex = ""
    parts = pattern.split("/")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _part_regex(part) + ("" if last else "/")
    return regex


def matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """Whether a relative path matches any of the (checked) patterns."""
    compiled = re.compile("|".join(f"(?:{pattern_regex(p)})" for p in patterns) or "(?!)")
    return lambda name: compiled.fullmatch(name) is not None


def acceptable_name(name: str) -> bool:
    """A name that can come back: valid UTF-8 (os gives others as surrogates) and no control
    characters (JSON carries them, but a client's file system may not)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class Choice:
    """Which of the gathered matches come back (see the module's rule)."""

    names: list[str] = field(default_factory=list)
    limits_hit: list[str] = field(default_factory=list)


def choose(found: list[tuple[str, int]], request: OutputRequest) -> Choice:
    """From up to ``max_files + 1`` (name, size) matches, the names that come back."""
    choice = Choice()
    total = 0
    for index, (name, size) in enumerate(sorted(found)):
        if index >= request.max_files:
            choice.limits_hit.append(MAX_FILES)
            break
        if total + size > request.max_bytes:
            if MAX_BYTES not in choice.limits_hit:
                choice.limits_hit.append(MAX_BYTES)
            continue
        total += size
        choice.names.append(name)
    return choice
