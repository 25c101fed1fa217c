"""Run a command under a unit's ``SystemCallFilter=``, as systemd would: the
unit's lines resolved into system calls (groups by ``systemd-analyze
syscall-filter``, in the unit's order: the first line an allow list, ``~``
lines taking away, later lines adding back), everything else failing with
EPERM (``SystemCallErrorNumber=EPERM``), loaded with libseccomp, then exec.

    python tests/syscall_filter.py UNIT_FILE [--drop NAME ...] [--user NAME] -- COMMAND...
    python tests/syscall_filter.py UNIT_FILE ... -- -m MODULE ARGS...

``--drop`` takes calls out of what the unit allows: a test that the filter is
really applied (the command fails without what it needs). ``--user`` switches
to that user first, as ``User=`` does. ``-m MODULE`` imports the module before
the switch and calls its ``main(ARGS)`` here: the user may not be able to read
this interpreter's files (a Python under /root)."""

from __future__ import annotations

import ctypes
import errno
import functools
import importlib
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO_BASE = 0x00050000


@functools.cache
def group(name: str) -> frozenset[str]:
    """A ``@group``'s system calls, nested groups expanded."""
    listed = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    calls: set[str] = set()
    for line in listed.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        calls |= group(item) if item.startswith("@") else {item}
    return frozenset(calls)


def expand(items: list[str]) -> set[str]:
    calls: set[str] = set()
    for item in items:
        calls |= group(item) if item.startswith("@") else {item}
    return calls


def allowed_by(unit_text: str) -> set[str]:
    """The calls a unit's SystemCallFilter= lines allow (an allow list first)."""
    lines = re.findall(r"^SystemCallFilter=(.*)$", unit_text, re.M)
    if not lines or lines[0].startswith("~"):
        raise SystemExit("the unit must start with an allow list")
    allowed = expand(["@default"])  # systemd always allows these
    for line in lines:
        deny = line.startswith("~")
        calls = expand(line.lstrip("~").split())
        allowed = allowed - calls if deny else allowed | calls
    return allowed


def load(allowed: set[str]) -> None:
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    context = lib.seccomp_init(SCMP_ACT_ERRNO_BASE | errno.EPERM)
    for name in sorted(allowed):
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:  # not on this architecture
            continue
        if lib.seccomp_rule_add(context, SCMP_ACT_ALLOW, number, 0) != 0:
            raise SystemExit(f"libseccomp refused {name}")
    if lib.seccomp_load(context) != 0:
        raise SystemExit("libseccomp could not load the filter")


def main(argv: list[str]) -> None:
    split = argv.index("--")
    unit, options, command = Path(argv[0]), argv[1:split], argv[split + 1 :]
    allowed = allowed_by(unit.read_text())
    values = dict.fromkeys(("--drop", "--user"), ())
    for option, value in zip(options[::2], options[1::2], strict=True):
        values[option] = (*values[option], value)
    allowed -= expand(list(values["--drop"]))
    module = importlib.import_module(command[1]) if command[0] == "-m" else None
    for name in values["--user"]:
        user = pwd.getpwnam(name)
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    load(allowed)
    if module is not None:
        sys.argv = [command[1], *command[2:]]
        sys.exit(module.main(command[2:]))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
