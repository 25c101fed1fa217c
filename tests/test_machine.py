"""What the admin menu says about the machine: its network addresses, read the
way the kiosk reads them, against the address this machine really talks from."""

from __future__ import annotations

import json
import socket

import pytest

from appliance import machine

# `ip -j addr show scope global` on a machine where the admin menu said "no network":
# iproute2 put an empty {} beside the IPv6 address.
IP_JSON_WITH_AN_EMPTY_ENTRY = json.dumps(
    [
        {"ifindex": 2, "ifname": "ifb0", "addr_info": []},
        {
            "ifindex": 4,
            "ifname": "eth0",
            "addr_info": [
                {"family": "inet", "local": "192.0.2.2", "prefixlen": 24, "scope": "global"},
                {"family": "inet6", "local": "fd00::2", "prefixlen": 64, "nodad": True},
                {},
            ],
        },
    ]
)


def talking_from() -> str:
    """The source address of this machine's route out (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("198.51.100.1", 9))  # TEST-NET-2: only the route is looked up
        return probe.getsockname()[0]


def test_an_empty_entry_in_ip_output_does_not_hide_the_addresses():
    assert machine.parse_ip_json(IP_JSON_WITH_AN_EMPTY_ENTRY) == ["eth0 192.0.2.2", "eth0 fd00::2"]


@pytest.mark.parametrize("garbage", ["", "[]", "{}", "[1, null]", '[{"addr_info": null}]'])
def test_odd_ip_output_is_no_addresses_not_a_crash(garbage):
    assert machine.parse_ip_json(garbage) == []


def test_the_admin_menu_finds_the_address_this_machine_talks_from():
    source = talking_from()
    assert any(line.endswith(f" {source}") for line in machine.ip_addresses())


def test_without_ip_the_kernel_itself_gives_the_same_addresses(monkeypatch):
    with_ip = machine.ip_addresses()
    monkeypatch.setattr(machine, "IP_SEARCH_PATH", "/nonexistent")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert machine._from_ip() == [], "no ip command on this PATH"
    without = machine.ip_addresses()
    assert any(line.endswith(f" {talking_from()}") for line in without)
    assert sorted(without) == sorted(with_ip)
    assert not [line for line in without if line.split()[1] in ("127.0.0.1", "::1")]
