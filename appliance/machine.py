"""What the admin menu tells a technician about the machine, and the power
commands it runs (configurable, so tests substitute a recorder)."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence

log = logging.getLogger("vuoro.machine")


def ip_addresses() -> list[str]:
    """Global IPv4/IPv6 addresses with their interface ("eth0 192.168.1.20")."""
    try:
        out = subprocess.run(
            ["ip", "-j", "addr", "show", "scope", "global"],
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        ).stdout
        return [
            f"{link['ifname']} {addr['local']}"
            for link in json.loads(out)
            for addr in link.get("addr_info", [])
        ]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return []


def run_command(command: Sequence[str]) -> str:
    """Start a power command (reboot, power off) without waiting; "" or why not."""
    try:
        subprocess.Popen(list(command), stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        log.error("could not run %s: %s", command, exc)
        return str(exc)
    log.warning("ran %s", " ".join(command))
    return ""
