"""README: "a bad config reply keeps the last good config". A real sync daemon
talks to the real server through a stand-in (a proxy on a loopback socket)
that answers the config request badly: JSON of the wrong shape, a 500, a body
that is not JSON, a service name over the protocol's 500 characters. The
kiosk keeps its last good services and branch, the daemon keeps running and
says why, and the server's next good config is taken. A config that is odd
but valid (unknown fields, a 500-character name, emoji, right-to-left text)
is taken as it is."""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from sync import state, tickets
from sync.credentials import Credentials
from tests.server_process import SyncProcess, wait_until

# the kiosk's handling of a config reply, with the server as a backdrop
SERVER_DATABASES = ("sqlite",)

CONFIG_PATH = "/api/v1/kiosk/config"


class ConfigProxy:
    """Passes every request to the real server, except that while ``bad`` is
    set, the config request is answered with ``bad`` = (status, body) instead."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.bad: tuple[int, bytes] | None = None
        self.bad_served = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:
                pass

            def do_GET(self) -> None:
                self.forward("GET")

            def do_POST(self) -> None:
                self.forward("POST")

            def forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    bad = proxy.bad if self.path == CONFIG_PATH else None
                    if bad:
                        proxy.bad_served += 1
                if bad:
                    status, content, headers = bad[0], bad[1], {"ETag": '"bad"'}
                else:
                    reply = requests.request(
                        method,
                        proxy.upstream + self.path,
                        data=body,
                        headers={
                            k: v
                            for k, v in self.headers.items()
                            if k.lower() in ("authorization", "content-type", "if-none-match")
                        },
                        timeout=10,
                    )
                    status, content = reply.status_code, reply.content
                    headers = {k: v for k, v in reply.headers.items() if k.lower() == "etag"}
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(content)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve_bad(self, status: int, body: bytes) -> None:
        with self.lock:
            self.bad, self.bad_served = (status, body), 0

    def serve_good(self) -> None:
        with self.lock:
            self.bad = None

    def served_bad(self) -> int:
        with self.lock:
            return self.bad_served

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def kiosk_config(kiosk_dir: Path) -> dict:
    """What the kiosk runs on: its services and branch as the state DB holds them."""
    db = sqlite3.connect(f"file:{kiosk_dir / 'state.db'}?mode=ro", uri=True)
    try:
        services = db.execute(
            "SELECT id, prefix, names, texts, position, is_open, listed FROM services ORDER BY id"
        ).fetchall()
        branch = db.execute("SELECT value FROM config WHERE key = 'branch'").fetchone()
        return {"services": services, "branch": json.loads(branch[0])}
    finally:
        db.close()


def issue_one(kiosk_dir: Path) -> str:
    db = state.connect(kiosk_dir / "state.db")
    try:
        ticket = tickets.issue_ticket(db, "payments", language="en")
        tickets.mark_handed(db, ticket.id)
        tickets.mark_printed(db, ticket.id)
        return ticket.id
    finally:
        db.close()


def delivered(kiosk_dir: Path, ticket_id: str) -> bool:
    with sqlite3.connect(kiosk_dir / "state.db") as db:
        row = db.execute(
            "SELECT delivered_at FROM outbox WHERE ticket_id = ?", [ticket_id]
        ).fetchone()
    return row is not None and row[0] is not None


def device_status(kiosk_dir: Path, component: str) -> tuple[str, str]:
    db = sqlite3.connect(f"file:{kiosk_dir / 'state.db'}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT state, detail FROM device_status WHERE component = ?", [component]
        ).fetchone()
        return tuple(row) if row else ("", "")
    finally:
        db.close()


def through_proxy(kiosk_dir: Path, proxy: ConfigProxy) -> None:
    """Point the paired kiosk's credentials at the proxy."""
    credentials = Credentials.load(kiosk_dir)
    assert credentials is not None
    Credentials(**{**credentials.__dict__, "server": proxy.url}).save(kiosk_dir)


def real_config(server, kiosk_dir: Path) -> dict:
    token = Credentials.load(kiosk_dir).token
    reply = requests.get(
        server.url + CONFIG_PATH, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert reply.status_code == 200
    return reply.json()


def test_a_bad_config_reply_keeps_the_last_good_config_until_a_good_one_comes(branch, tmp_path):
    """Each bad reply in turn, each tried at least twice by a running daemon:
    the services and branch in the state DB stay the last good ones and the
    reason is recorded and logged; then the server's changed config is taken."""
    server, kiosk_dir = branch
    good = kiosk_config(kiosk_dir)
    assert [row[0] for row in good["services"]] == ["advice", "payments", "permits"]
    assert good["branch"]["name"] == "Vuoro demo branch"
    too_long = real_config(server, kiosk_dir)
    too_long["services"][0]["names"]["en"] = "P" * 501  # the protocol's Text is at most 500
    bad_replies = {
        "wrong shape": (200, b'{"branch": {"id": "demo"}, "services": "all of them"}'),
        "server error": (500, b"Internal Server Error"),
        "not JSON": (200, b'{"branch": {"id": "demo", "name": "Half a rep'),
        "name too long": (200, json.dumps(too_long).encode()),
    }
    proxy = ConfigProxy(server.url)
    through_proxy(kiosk_dir, proxy)
    proxy.serve_bad(*bad_replies["wrong shape"])  # from the daemon's first request on
    daemon = SyncProcess(kiosk_dir)  # retries within a second (--max-backoff 1)
    try:
        for what, (status, body) in bad_replies.items():
            proxy.serve_bad(status, body)
            for _ in range(2):  # a new ticket wakes the daemon: a round with this reply
                issued = issue_one(kiosk_dir)  # and a bad config does not hold tickets back
                wait_until(
                    lambda i=issued: delivered(kiosk_dir, i) or daemon.process.poll() is not None,
                    timeout=30,
                    what=f"{what}: a ticket sent",
                )
                assert daemon.process.poll() is None, (
                    f"{what}: the daemon died:\n" + (kiosk_dir / "sync.log").read_text()[-2000:]
                )
            assert proxy.served_bad() >= 1, f"{what}: the bad reply was served"
            assert kiosk_config(kiosk_dir) == good, f"{what}: the last good config was not kept"
            state, detail = device_status(kiosk_dir, "config")
            assert state == "kept_last_good", (what, state, detail)
            expected = "HTTP 500" if status == 500 else "reply is not a KioskConfig"
            assert expected in detail, (what, detail)
        log = (kiosk_dir / "sync.log").read_text()
        assert "config refused (reply is not a KioskConfig" in log
        assert "config refused (HTTP 500)" in log
        assert device_status(kiosk_dir, "server")[0] == "ok", "the rest of each round went on"

        renamed = tmp_path / "renamed.toml"
        renamed.write_text(
            (tmp_path / "branch.toml")
            .read_text(encoding="utf-8")
            .replace('en = "Payments"', 'en = "Payments and refunds"'),
            encoding="utf-8",
        )
        server.load_branch(renamed)
        proxy.serve_good()  # the server answers well again

        def names() -> dict:
            rows = kiosk_config(kiosk_dir)["services"]
            return {row[0]: json.loads(row[2]) for row in rows}

        wait_until(
            lambda: names()["payments"]["en"] == "Payments and refunds",
            timeout=30,
            what="the new config taken",
        )
        wait_until(lambda: device_status(kiosk_dir, "config")[0] == "ok", timeout=30, what="ok")
        assert daemon.process.poll() is None
    finally:
        daemon.stop()
        proxy.close()


def test_an_odd_but_valid_config_is_taken_safely(branch):
    """Unknown fields are ignored; a 500-character name, emoji and right-to-left
    text are kept exactly as sent."""
    server, kiosk_dir = branch
    odd = real_config(server, kiosk_dir)
    odd["colour_scheme"] = {"anything": [1, 2, 3]}
    odd["services"][0]["names"]["en"] = "🎟️" + "N" * 498  # 500 characters with the emoji
    odd["services"][0]["names"]["ar"] = "مدفوعات"
    odd["services"][0]["queue_display"] = "big"
    long_name = odd["services"][0]["names"]["en"]
    assert len(long_name) == 500
    proxy = ConfigProxy(server.url)
    through_proxy(kiosk_dir, proxy)
    proxy.serve_bad(200, json.dumps(odd).encode())
    daemon = SyncProcess(kiosk_dir)
    try:

        def names() -> dict:
            rows = kiosk_config(kiosk_dir)["services"]
            return {row[0]: json.loads(row[2]) for row in rows}

        first = odd["services"][0]["id"]
        wait_until(lambda: names()[first]["en"] == long_name, timeout=30, what="odd config taken")
        assert names()[first]["ar"] == "مدفوعات"
        assert daemon.process.poll() is None
    finally:
        daemon.stop()
        proxy.close()
