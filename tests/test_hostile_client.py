"""A hostile client against the real `vuoro-server serve` over loopback:
while ~1,100 idle and half-sent connections, a flood of wrong logins and 20 MB
bodies run against it, a paired kiosk's heartbeat and ticket push and a phone's
ticket poll keep being answered: no 5xx, no timeout. The attack lasts a few
seconds; the server is started with the soft open-file limit most processes
get (1,024), as under systemd without LimitNOFILE."""

from __future__ import annotations

import time

import requests

from tests.hostile import Attack, served_branch

ATTACK_S = 4.0  # how long the kiosk and the phone keep working under attack


def test_kiosks_and_phones_are_served_through_an_attack(tmp_path):
    target = served_branch(tmp_path)
    failures: list[str] = []
    answered = 0
    try:
        with Attack(target.server.port) as attack:
            deadline = time.monotonic() + ATTACK_S
            while time.monotonic() < deadline or answered < 3 * 3:
                for name, call in (
                    ("heartbeat", target.heartbeat),
                    ("ticket push", target.push_ticket),
                    ("ticket poll", target.poll),
                ):
                    try:
                        reply = call()
                    except requests.RequestException as exc:
                        failures.append(f"{name}: {type(exc).__name__}")
                        continue
                    answered += 1
                    if reply.status_code >= 500 or not reply.ok:
                        failures.append(f"{name}: {reply.status_code} {reply.text[:100]}")
                if len(failures) > 5:
                    break
        assert requests.get(f"{target.server.url}/healthz", timeout=30).ok
    finally:
        target.server.stop()
    done = dict(attack.done)
    assert not failures, f"{failures[:5]} (attack: {done})"
    # the attack really ran: sockets held, logins hashed, bodies refused
    assert done.get("idle sockets", 0) >= 1000, done
    assert done.get("login 401", 0) > 0, "wrong passwords were hashed"
    assert sum(v for k, v in done.items() if k.startswith("20 MB")) > 0, done
