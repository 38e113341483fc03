"""Which installed version a request's version string selects.

Accepted: empty, ``*``, ``latest`` or ``x`` (anything); an exact version or a prefix of its
parts (``3``, ``3.11``, ``3.11.7``; ``x`` parts are wildcards), as execbox's own API always
took; and npm-style semver ranges, as Piston's API takes: comparators (``>=3.10 <4``), caret
(``^3.10``), tilde (``~3.11``), hyphen ranges (``3.8 - 3.11``) and alternatives (``||``).
"""

from __future__ import annotations

import re

WILDCARDS = {"", "*", "x", "X", "latest"}
COMPARATOR = re.compile(r"^(>=|<=|>|<|=|\^|~)?\s*v?([0-9xX*]+(?:\.[0-9xX*]+)*)")


class BadVersion(ValueError):
    """The version string is not a version nor a range."""


def _parts(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def _partial(text: str) -> list[int | None]:
    """'3.x' -> [3, None]; wildcard parts end the version."""
    parts: list[int | None] = []
    for piece in text.split("."):
        if piece in ("x", "X", "*"):
            break
        parts.append(int(piece))
    return parts


def _pad(parts: list[int], value: int = 0) -> tuple[int, int, int]:
    full = (parts + [value] * 3)[:3]
    return full[0], full[1], full[2]


def _bump(parts: list[int], index: int) -> tuple[int, int, int]:
    """The first version above every version that starts with parts[:index + 1]."""
    head = parts[: index + 1]
    head[-1] += 1
    return _pad(head)


def _comparator(operator: str, text: str, have: tuple[int, int, int]) -> bool:
    parts = [p for p in _partial(text) if p is not None]
    if not parts:
        return operator not in ("<", ">")
    low = _pad(parts)
    match operator:
        case "" | "=":
            return have[: len(parts)] == tuple(parts)
        case ">=":
            return have >= low
        case ">":
            return have >= _bump(parts, len(parts) - 1) if len(parts) < 3 else have > low
        case "<":
            return have < low
        case "<=":
            return have < _bump(parts, len(parts) - 1) if len(parts) < 3 else have <= low
        case "~":
            return low <= have < _bump(parts, min(1, len(parts) - 1))
        case "^":
            first_nonzero = next((i for i, p in enumerate(parts) if p != 0), len(parts) - 1)
            return low <= have < _bump(parts, first_nonzero)
    raise BadVersion(operator)


def _matches_set(text: str, have: tuple[int, int, int]) -> bool:
    hyphen = re.fullmatch(r"\s*(\S+)\s+-\s+(\S+)\s*", text)
    if hyphen:
        return _comparator(">=", hyphen[1], have) and _comparator("<=", hyphen[2], have)
    rest = text.strip()
    if rest in WILDCARDS:
        return True
    while rest:
        match = COMPARATOR.match(rest)
        if not match:
            raise BadVersion(text)
        if not _comparator(match[1] or "", match[2], have):
            return False
        rest = rest[match.end() :].strip()
    return True


def version_matches(wanted: str | None, have: str) -> bool:
    """Whether the installed version ``have`` satisfies ``wanted``; BadVersion when ``wanted``
    is neither a version nor a range."""
    if wanted is None or wanted.strip() in WILDCARDS:
        return True
    have_parts = _pad(list(_parts(have)))
    return any(_matches_set(alternative, have_parts) for alternative in wanted.split("||"))
