"""The sync daemon: carries the state DB to and from the central queue server.

A separate process, so a hung network can never freeze the kiosk's screen;
the state DB is its only channel to the kiosk. Each cycle: config (ETag),
number leases, the outbox (in order, in batches), a heartbeat. Failures back
off with full jitter, capped at a minute; new local tickets cut the wait
short, so tickets flow promptly when the server is there.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

from appliance.notify import Notifier
from sync import clock, commands, devices, exchange, protocol, state
from sync.client import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    NotAuthorized,
    Refused,
    ServerClient,
    ServerTrouble,
    SyncError,
)
from sync.credentials import Credentials
from sync.devices import PAIR_REQUEST_KEY, SYNC_NOW_KEY
from sync.tickets import boot_id, branch_day, get_config, iso, listed_services, now_utc, set_config

log = logging.getLogger("vuoro.sync")

LEASE_LOW_WATER = 25
LEASE_BLOCK = 100
IDLE_S = 10.0
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
POLL_S = 0.25  # how often an idle daemon looks for new tickets in the DB


def pair(
    state_dir: Path, server: str, code: str, name: str, ca_bundle: str | None = None
) -> Credentials:
    """Spend a pairing code; afterwards the kiosk numbers from server leases."""
    client = ServerClient(server, ca_bundle=ca_bundle)
    try:
        reply = client.pair(code, name)
    finally:
        client.close()
    credentials = Credentials(
        server, reply.kiosk_id, reply.branch_id, reply.token, reply.reserve_tag, ca_bundle
    )
    credentials.save(state_dir)
    db = state.connect(state_dir / "state.db")
    with state.transaction(db):
        set_config(db, "mode", "paired")
        set_config(db, "reserve_tag", reply.reserve_tag)
        set_config(db, "kiosk_id", reply.kiosk_id)
        set_config(db, "server", server)
    db.close()
    return credentials


def wait_for_pairing(
    state_dir: Path, server: str | None, stopping: threading.Event, name: str
) -> Credentials | None:
    """Unpaired: wait for a code from the admin menu (through the DB), and spend it.

    The kiosk keeps numbering on its own meanwhile; the outcome goes to the
    ``pairing`` device status, which the admin menu shows.
    """
    notifier = Notifier()
    notifier.ready("waiting to be paired (admin menu: Pair with a code)")
    db = state.connect(state_dir / "state.db")
    interval = notifier.ping_interval_s() or POLL_S
    try:
        while not stopping.wait(min(POLL_S, interval)):
            notifier.watchdog()
            request = get_config(db, PAIR_REQUEST_KEY)
            if not request:
                continue
            set_config(db, PAIR_REQUEST_KEY, None)
            if not server:
                devices.record(
                    db, "pairing", "failed", "no server: set VUORO_SERVER in /etc/vuoro/sync.env"
                )
                continue
            try:
                credentials = pair(state_dir, server, str(request["code"]).upper(), name)
            except SyncError as exc:
                log.warning("pairing with %s failed: %s", request["code"], exc)
                devices.record(db, "pairing", "failed", str(exc))
                continue
            devices.record(db, "pairing", "paired", credentials.kiosk_id)
            log.info("paired as %s from the admin menu", credentials.kiosk_id)
            return credentials
    finally:
        db.close()
    return None


def _clock_word(reading: clock.Reading) -> str:
    return f"{reading.source}: {reading.reason}" if reading.reason else reading.source


class Backoff:
    """Full-jitter exponential back-off (AWS architecture blog's "full jitter")."""

    def __init__(
        self,
        base: float = BACKOFF_BASE_S,
        cap: float = BACKOFF_CAP_S,
        rng: random.Random | None = None,
    ) -> None:
        self.base, self.cap, self.failures = base, cap, 0
        self.rng = rng or random.Random()

    def next_delay(self) -> float:
        self.failures += 1
        return self.rng.uniform(0, min(self.cap, self.base * 2 ** min(self.failures, 16)))

    def reset(self) -> None:
        self.failures = 0


class SyncDaemon:
    def __init__(
        self,
        state_dir: Path,
        credentials: Credentials,
        version: str = "",
        timeouts: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
    ) -> None:
        self.state_dir = state_dir
        self.credentials = credentials
        self.version = version
        self.db_path = state_dir / "state.db"
        self.db = state.connect(self.db_path)
        self._db_inode = os.stat(self.db_path).st_ino
        self.client = ServerClient(
            credentials.server, credentials.token, credentials.ca_bundle, timeouts
        )
        self.backoff = Backoff()
        self.stopping = threading.Event()
        self._last_heartbeat = 0.0
        self.notifier = Notifier()
        self._next_ping = 0.0

    def alive(self) -> None:
        """Ping systemd's watchdog (at most every third of ``WatchdogSec=``): called
        between requests and while idle, so only a daemon that hangs misses it."""
        interval = self.notifier.ping_interval_s()
        if interval is not None and time.monotonic() >= self._next_ping:
            self.notifier.watchdog()
            self._next_ping = time.monotonic() + interval

    # -- one cycle ---------------------------------------------------------------

    def cycle(self) -> None:
        """Config, leases, outbox, heartbeat; raises :class:`SyncError` on the first failure.

        Without the server's time of this boot, the heartbeat comes first: it
        tells the kiosk what day it is before any lease is asked for.
        """
        self.pull_config()
        self.alive()
        if clock.server_now(self.db) is None:
            self.heartbeat()
        self.top_up_leases()
        self.push_outbox()
        if time.monotonic() - self._last_heartbeat >= protocol.HEARTBEAT_S:
            self.heartbeat()
        self.alive()

    def pull_config(self) -> None:
        """The server's config, if it changed. A reply that is not a config (a
        500, garbage) keeps the last good one and does not stop the round:
        tickets still go and leases still come."""
        etag = str(get_config(self.db, "server_etag", "") or "")
        try:
            config, new_etag = self.client.config(etag)
        except ServerTrouble as exc:
            log.warning("config refused (%s): the last good config stays", exc)
            devices.record(self.db, "config", "kept_last_good", str(exc))
            return
        if config is not None:
            exchange.apply_server_config(self.db, config, new_etag)
            log.info("config %s: %d services", new_etag, len(config.services))
        devices.record(self.db, "config", "ok")

    def top_up_leases(self) -> None:
        now = clock.read(self.db)
        if not now.sure:  # a lease for the wrong day is numbers nobody calls
            log.warning("no leases asked for: %s", now.reason)
            return
        day = branch_day(self.db, now.moment)
        for service in listed_services(self.db):
            if (
                service.availability.status == "closed"  # switched off; hours may open
                or exchange.leased_remaining(self.db, service.id, day) >= LEASE_LOW_WATER
            ):
                continue
            try:
                lease = self.client.lease(
                    protocol.LeaseRequest(service_id=service.id, day=day, count=LEASE_BLOCK)
                )
            except Refused as exc:
                log.warning("lease for %s refused: %s", service.id, exc)
                continue
            exchange.add_lease(self.db, lease)
            log.info("lease %s %s: %d-%d", service.id, day, lease.first, lease.last)
            self.alive()

    def push_outbox(self) -> int:
        sent = 0
        while tickets := exchange.pending(self.db, protocol.MAX_BATCH):
            batch = protocol.TicketBatch(
                sent_at=iso(now_utc()),
                sent_mono_ns=time.monotonic_ns(),
                boot_id=boot_id(),
                tickets=tickets,
            )
            try:
                result = self.client.push(batch)
            except Refused as exc:  # the whole batch is malformed: park it, say why
                result = protocol.TicketBatchResult(
                    results=[
                        protocol.TicketResult(id=t.id, result=f"rejected:{exc}") for t in tickets
                    ],
                    server_time="",
                )
            parked = exchange.record_results(self.db, result.results)
            if parked:
                log.warning("%d ticket(s) parked by the server", parked)
            sent += len(tickets)
            self.alive()
        if sent:
            log.info("delivered %d ticket(s)", sent)
        return sent

    def heartbeat(self) -> None:
        printer = devices.get(self.db, "printer")
        beat = protocol.Heartbeat(
            printer=printer.state if printer else "unknown",
            version=self.version,
            sent_at=iso(now_utc()),
            out_of_order=devices.is_out_of_order(self.db),
            clock=_clock_word(clock.read(self.db)),
            problems=devices.problems(self.db),
            accepts=commands.ACCEPTS,
            results=commands.unreported(self.db),
            **exchange.counts(self.db),
        )
        reply = self.client.heartbeat(beat)
        exchange.apply_heartbeat(self.db, reply, time.monotonic_ns())
        commands.mark_reported(self.db, [r.id for r in beat.results])
        self._last_heartbeat = time.monotonic()

    # -- the loop ----------------------------------------------------------------

    def run(self, max_cycles: int | None = None) -> None:
        cycles = 0
        self.notifier.ready(f"syncing with {self.credentials.server}")
        self.alive()
        while not self.stopping.is_set() and (max_cycles is None or cycles < max_cycles):
            cycles += 1
            try:
                self._reopen_if_replaced()
                self.cycle()
                self.backoff.reset()
                devices.record(self.db, "server", "ok")
                set_config(self.db, "last_sync_ok", iso(now_utc()))
                wait = IDLE_S
            except NotAuthorized as exc:
                devices.record(self.db, "server", "not_authorized", str(exc))
                log.error("server refuses this kiosk (%s); it keeps printing its own numbers", exc)
                wait = BACKOFF_CAP_S
            except SyncError as exc:
                devices.record(self.db, "server", "unreachable", str(exc))
                wait = self.backoff.next_delay()
                log.warning("sync failed (%s); next try in %.1f s", exc, wait)
            except (sqlite3.DatabaseError, OSError) as exc:  # the kiosk recovers it at start
                log.error("state DB unusable (%s); trying again", exc)
                self._sleep_plain(self.backoff.next_delay())
                continue
            self._sleep(wait)

    def _reopen_if_replaced(self) -> None:
        """The kiosk sets a damaged DB aside and makes a new one: follow it there."""
        try:
            inode = os.stat(self.db_path).st_ino
        except FileNotFoundError:
            return
        if inode != self._db_inode:
            log.warning("state DB was replaced (recovered by the kiosk): reopening it")
            self.db.close()
            self.db = state.connect(self.db_path)
            self._db_inode = inode

    def _step(self, deadline: float) -> float:
        """How long to wait before looking again: the poll, the deadline, or the
        next watchdog ping, whichever comes first."""
        now = time.monotonic()
        ping = self._next_ping - now if self.notifier.ping_interval_s() is not None else POLL_S
        return max(min(POLL_S, deadline - now, ping), 0)

    def _sleep_plain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping.wait(self._step(deadline)):
            self.alive()
            if time.monotonic() >= deadline:
                return

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake as soon as the kiosk commits a new ticket or the admin
        menu asks for a sync now."""
        seen = exchange.newest_outbox_id(self.db)
        asked = get_config(self.db, SYNC_NOW_KEY)
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and time.monotonic() < deadline:
            self.alive()
            if self.stopping.wait(self._step(deadline)):
                return
            if get_config(self.db, SYNC_NOW_KEY) != asked:
                log.info("sync asked for from the admin menu")
                self.backoff.reset()
                self._last_heartbeat = 0.0  # a heartbeat too: commands, the queue, the clock
                return
            if exchange.newest_outbox_id(self.db) != seen and self.backoff.failures < 3:
                return

    def stop(self, *_args) -> None:
        self.notifier.stopping()
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
