"""What the admin menu tells a technician about the machine, and the power
commands it runs (configurable, so tests substitute a recorder)."""

from __future__ import annotations

import array
import fcntl
import ipaddress
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("vuoro.machine")


#: ``ip`` lives in /usr/sbin or /sbin, which a unit's or a user's PATH may lack.
IP_SEARCH_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"
SIOCGIFCONF = 0x8912  # the kernel's list of IPv4 addresses, by interface
IFREQ_SIZE = 40 if struct.calcsize("P") == 8 else 32  # struct ifreq: 32 bytes on a 32-bit Pi


def ip_addresses() -> list[str]:
    """Global IPv4/IPv6 addresses with their interface ("eth0 192.168.1.20").

    From ``ip -j addr``, else from the kernel directly (the socket ioctl for
    IPv4, ``/proc/net/if_inet6`` for IPv6), so that a missing ``ip`` or an
    output it cannot parse never makes a connected kiosk say "no network".
    """
    return _from_ip() or _from_kernel()


def _from_ip() -> list[str]:
    command = shutil.which("ip", path=f"{os.environ.get('PATH', '')}:{IP_SEARCH_PATH}")
    if command is None:
        return []
    try:
        out = subprocess.run(
            [command, "-j", "addr", "show", "scope", "global"],
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        ).stdout
        return parse_ip_json(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return []


def parse_ip_json(out: str) -> list[str]:
    """``ip -j addr`` output as "ifname address" lines.

    Some iproute2 versions put an empty ``{}`` into ``addr_info`` (seen beside an
    IPv6 address with ``nodad``): skip what has no address, never the whole list.
    """
    found = []
    for link in json.loads(out or "[]"):
        if not isinstance(link, dict):
            continue
        for addr in link.get("addr_info") or []:
            if isinstance(addr, dict) and addr.get("local") and _is_global(addr["local"]):
                found.append(f"{link.get('ifname', '?')} {addr['local']}")
    return found


def _from_kernel() -> list[str]:
    return _ipv4_from_kernel() + _ipv6_from_kernel()


def _ipv4_from_kernel() -> list[str]:
    found = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            buffer = array.array("B", bytes(IFREQ_SIZE * 64))
            request = struct.pack("iP", len(buffer), buffer.buffer_info()[0])
            length = struct.unpack("iP", fcntl.ioctl(probe.fileno(), SIOCGIFCONF, request))[0]
    except OSError:
        return []
    data = buffer.tobytes()[:length]
    for start in range(0, length, IFREQ_SIZE):
        name = data[start : start + 16].split(b"\0", 1)[0].decode(errors="replace")
        address = socket.inet_ntoa(data[start + 20 : start + 24])  # sockaddr_in's sin_addr
        if _is_global(address):
            found.append(f"{name} {address}")
    return found


def _ipv6_from_kernel() -> list[str]:
    found = []
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) != 6:
            continue
        address = str(ipaddress.IPv6Address(bytes.fromhex(fields[0])))
        if _is_global(address):
            found.append(f"{fields[5]} {address}")
    return found


def _is_global(address: str) -> bool:
    """What ``scope global`` means: not loopback, not link-local."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (parsed.is_loopback or parsed.is_link_local or parsed.is_unspecified)


def run_command(command: Sequence[str]) -> str:
    """Start a power command (reboot, power off) without waiting; "" or why not."""
    try:
        subprocess.Popen(list(command), stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        log.error("could not run %s: %s", command, exc)
        return str(exc)
    log.warning("ran %s", " ".join(command))
    return ""
