"""The syscall policy of sandbox/syscalls.py as a Docker seccomp profile (JSON)."""

from __future__ import annotations

import json

from execbox.sandbox.syscalls import Arg, Op
from execbox.sandbox.syscalls import rules as syscall_rules

DOCKER_OPS = {
    Op.EQ: "SCMP_CMP_EQ",
    Op.NE: "SCMP_CMP_NE",
    Op.GT: "SCMP_CMP_GT",
    Op.MASKED_EQ: "SCMP_CMP_MASKED_EQ",
}


def _docker_arg(arg: Arg) -> dict:
    if arg.op is Op.MASKED_EQ:  # Docker's "value" is the mask, "valueTwo" the result
        return {
            "index": arg.index,
            "value": arg.mask,
            "valueTwo": arg.value,
            "op": DOCKER_OPS[arg.op],
        }
    return {"index": arg.index, "value": arg.value, "valueTwo": 0, "op": DOCKER_OPS[arg.op]}


def seccomp_profile() -> str:
    """The syscall policy of sandbox/syscalls.py as a Docker seccomp profile (JSON)."""
    profile_rules = []
    for rule in syscall_rules():
        entry: dict = {"names": [rule.syscall], "action": "SCMP_ACT_ERRNO", "errnoRet": rule.errno}
        if rule.args:
            entry["args"] = [_docker_arg(arg) for arg in rule.args]
        profile_rules.append(entry)
    return json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": profile_rules})


SECCOMP_PROFILE = seccomp_profile()
