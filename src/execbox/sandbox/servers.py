"""Which server owns a sandbox resource: a name from the pid and its start time (a recycled
pid is another server), and whether that server still runs, so a new one can clean up."""

from __future__ import annotations

import os


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def server_name(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"srv-{pid}-{_start_time(pid)}"


def server_alive(name: str) -> bool:
    parts = name.split("-")
    if len(parts) != 3 or parts[0] != "srv" or not parts[1].isdigit():
        return False
    return server_name(int(parts[1])) == name
