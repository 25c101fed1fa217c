"""Eight counters over a thousand tickets, through the staff console of a server
with four worker processes on PostgreSQL: no ticket to two counters, none
skipped. Every press is a real HTTP request a load balancer could have given to
any worker."""

from __future__ import annotations

import re
import threading
import urllib.parse

import requests

from server import branch_file
from server.storage import Storage
from tests.server_data import DEMO
from tests.server_process import Server
from tests.test_calling import fill
from tests.web import PASSWORD, add_staff

COUNTERS = 8
TICKETS = 1000
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Counter:
    """One counter's browser: logged in, pressing "served" then "call next"."""

    def __init__(self, server: Server, username: str) -> None:
        self.url = server.url
        self.session = requests.Session()
        reply = self.session.post(
            f"{self.url}/console/login",
            data={"username": username, "password": PASSWORD},
            timeout=60,
        )
        assert reply.ok and "csrf" in reply.text, reply.text[:300]
        self.csrf = CSRF.search(reply.text).group(1)
        self.called: list[str] = []

    def press(self, action: str) -> str:
        reply = self.session.post(
            f"{self.url}/console/act",
            data={"csrf": self.csrf, "action": action},
            allow_redirects=False,
            timeout=60,
        )
        assert reply.status_code == 303, reply.text[:300]
        query = urllib.parse.urlsplit(reply.headers["location"]).query
        return urllib.parse.parse_qs(query).get("msg", [""])[0]

    def work(self, start: threading.Barrier) -> None:
        start.wait()
        while True:
            said = self.press("call")
            if said == "nobody is waiting":
                return
            assert said.endswith(" called"), said
            self.called.append(said.removesuffix(" called"))
            assert self.press("served").endswith(": served")


def test_eight_counters_on_four_workers_share_no_ticket_and_skip_none(tmp_path, postgres_url):
    storage = Storage(postgres_url)
    storage.put_branch(*branch_file.load(DEMO))
    fill(storage, TICKETS)
    server = Server(postgres_url, workers=4, logs=tmp_path)
    try:
        for n in range(1, COUNTERS + 1):
            add_staff(server, f"clerk{n}", str(n))
        counters = [Counter(server, f"clerk{n}") for n in range(1, COUNTERS + 1)]
        start = threading.Barrier(COUNTERS)
        errors: list[BaseException] = []

        def run(counter: Counter) -> None:
            try:
                counter.work(start)
            except BaseException as exc:  # reported below, with the others'
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c,)) for c in counters]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not errors, errors[0]
    finally:
        server.stop()
    called = [number for counter in counters for number in counter.called]
    assert len(called) == TICKETS, "none skipped"
    assert len(set(called)) == TICKETS, "none shared"
    assert sum(1 for counter in counters if len(counter.called) > 50) >= 4, "they really raced"
    with storage.reading() as db:
        rows = db.execute("SELECT status, COUNT(*) FROM tickets GROUP BY status").fetchall()
        by_counter = dict(
            db.execute("SELECT counter, COUNT(*) FROM tickets GROUP BY counter").fetchall()
        )
    assert rows == [("served", TICKETS)]
    assert by_counter == {str(n): len(c.called) for n, c in enumerate(counters, start=1)}
