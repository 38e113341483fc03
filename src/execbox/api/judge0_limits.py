"""Judge0's defaults and maxima for a submission's limits, and the time limits an operator
may change (``EXECBOX_JUDGE0_LIMITS``), as Judge0's own judge0.conf lets them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from execbox.config import Limits, Settings

# Seconds and KB, as Judge0's configuration documents them.
DEFAULTS: Mapping[str, float] = {
    "cpu_time_limit": 5.0,
    "cpu_extra_time": 1.0,
    "wall_time_limit": 10.0,
    "memory_limit": 128000,
    "stack_limit": 64000,
    "max_processes_and_or_threads": 60,
    "max_file_size": 1024,
    "number_of_runs": 1,
}
MAXIMA: Mapping[str, float] = {
    "cpu_time_limit": 15.0,
    "cpu_extra_time": 5.0,
    "wall_time_limit": 20.0,
    "memory_limit": 512000,
    "stack_limit": 128000,
    "max_processes_and_or_threads": 120,
    "max_file_size": 4096,
    "number_of_runs": 20,
}
# The limits an operator may set, by their /config_info names: each default and its maximum.
TUNABLE = ("cpu_time_limit", "cpu_extra_time", "wall_time_limit")
TUNABLE_NAMES = tuple(n for name in TUNABLE for n in (name, f"max_{name}"))


@dataclass(frozen=True)
class Judge0Limits:
    defaults: Mapping[str, float]
    maxima: Mapping[str, float]


def judge0_limits(settings: Settings) -> Judge0Limits:
    """Judge0's defaults and maxima with the operator's changes, within the server's own
    maxima; a ValueError says what is wrong with the changes (the server checks at start)."""
    return _within(_parse(settings.judge0_limits), settings.max_limits())


def _within(limits: Judge0Limits, server: Limits) -> Judge0Limits:
    """On a server whose MAX_ settings are below Judge0's numbers, a submission that asks for
    nothing still runs (its defaults shrink), and one that asks too much is told Judge0's way
    (a 422 naming the real maximum)."""
    cpu_s = server.cpu_time_ms / 1000
    caps = {
        "cpu_time_limit": cpu_s,
        "wall_time_limit": server.wall_time_ms / 1000,
        "memory_limit": server.memory_mb * 1024,
        "max_processes_and_or_threads": server.processes,
        "max_file_size": min(server.output_bytes // 1024, server.file_size_mb * 1024),
    }
    maxima = {name: min(value, caps.get(name, value)) for name, value in limits.maxima.items()}
    defaults = {name: min(value, maxima[name]) for name, value in limits.defaults.items()}
    # cpu_time_limit and cpu_extra_time make one CPU limit together.
    defaults["cpu_extra_time"] = min(defaults["cpu_extra_time"], cpu_s - defaults["cpu_time_limit"])
    return Judge0Limits(defaults, maxima)


@lru_cache(maxsize=8)
def _parse(text: str) -> Judge0Limits:
    defaults, maxima = dict(DEFAULTS), dict(MAXIMA)
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = (s.strip() for s in item.partition("="))
        if not sep or name not in TUNABLE_NAMES:
            raise ValueError(
                f"{item!r} is not one of {', '.join(TUNABLE_NAMES)} given as name=seconds"
            )
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a number of seconds") from None
        if not 0 < seconds <= 3600:
            raise ValueError(f"{name}: {value} is not between 0 and 3600 seconds")
        if name.startswith("max_"):
            maxima[name.removeprefix("max_")] = seconds
        else:
            defaults[name] = seconds
    for name in TUNABLE:
        if defaults[name] > maxima[name]:
            raise ValueError(f"{name} ({defaults[name]:g}) is above max_{name} ({maxima[name]:g})")
    return Judge0Limits(defaults, maxima)
