"""``vuoro-server serve``: uvicorn with the limits a server facing the internet needs.

uvicorn bounds a request head's size (h11) and closes an idle keep-alive
connection, but it never times out a connection that has not finished a
request head: it arms its keep-alive timer only after a response, and any byte
received cancels it (uvicorn issue #157 lists a request-start timeout as still
to do). A client that connects and sends nothing, or half a head, holds a socket
for ever; a thousand of them exhaust the process's open files, and then no
phone or kiosk gets in. ``Guarded`` closes such a connection when its head
has not arrived within a deadline, and sheds new connections past a bound.
The body's own deadline and size are the app's (server.limits), where the
route is known.

With ``--workers N`` the parent binds the socket, and uvicorn's supervisor
(``uvicorn.supervisors.Multiprocess``) spawns N workers sharing it, each
building its own app and storage engine after the spawn (:class:`Worker`:
no database connection crosses a process boundary), restarts a worker that
dies, and stops them all on SIGTERM. The parent has migrated the database
before any worker starts. Workers learn of each other's changes through the
live channel (``server.events``).

The process raises its soft open-file limit to the hard one at start (systemd
starts services at 1,024), keeps the connection limit below it, and logs the
floods a hostile client can cause (accept errors, refused connections, bad
requests) once a burst, with how many it left out.
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

from server import events
from server.limits import Limits

log = logging.getLogger("vuoro.server")

OPEN_FILES_CEILING = 1 << 20  # never ask for more, whatever the hard limit
FD_HEADROOM = 256  # files kept for other than connections (at most a quarter)
# The lines a flood repeats, by logger: asyncio's accept failure (open files
# exhausted), uvicorn's answer over the connection limit, a malformed request.
FLOOD_LINES = {
    "asyncio": (
        "socket.accept() out of system resource",
        "Exception in callback BaseSelectorEventLoop._start_serving",  # its timers, at exit
    ),
    "vuoro.server": ("too many connections",),
    "uvicorn.error": ("Exceeded concurrency limit", "Invalid HTTP request received"),
}


class Guarded(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head has not
    arrived ``head_timeout_s`` after it could have begun (the connection opened,
    or the previous response was sent), and closing a new connection at once
    while ``max_connections`` are open. A request being served is never cut.

    The second keeps the process below its open-file limit: past it accept()
    fails, and asyncio (3.11) then retries it ``backlog`` times a loop turn,
    logging each failure and leaving a timer behind for each; uvicorn's own
    limit (``limit_concurrency``, a 503) applies only once a request head has
    come, and keeps the connection. h11 rather than httptools: it is what
    uvicorn uses without its optional extras, and it bounds the head's size
    itself (``h11_max_incomplete_event_size``).
    """

    head_timeout_s: float = Limits.head_timeout_s
    max_connections: int | None = None
    _head_deadline = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            log.warning("too many connections (%d): closing new ones", self.max_connections)
            transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a request head arrived
            self._disarm()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        if self.cycle is cycle and not self.transport.is_closing():
            self._arm()  # waiting for the next head (a pipelined one may be in already)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """The server is stopping: live streams end now, so that waiting for
        responses to complete does not wait for pages that never finish."""
        events.end_all_subscriptions()
        super().shutdown()

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.head_timeout_s, self._head_overdue)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_overdue(self) -> None:
        self._head_deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            return
        if not self.transport.is_closing():
            self.transport.close()


def guarded(head_timeout_s: float, max_connections: int | None = None) -> type[Guarded]:
    """The protocol class uvicorn instantiates per connection, with these limits."""
    return type(
        "Guarded",
        (Guarded,),
        {"head_timeout_s": head_timeout_s, "max_connections": max_connections},
    )


def connection_budget(open_files: int) -> int:
    """How many connections may be open at once with ``open_files`` files: the
    rest are the DB files of each worker thread, the log, the listening socket."""
    return open_files - min(FD_HEADROOM, open_files // 4)


def raise_open_files_limit(ceiling: int = OPEN_FILES_CEILING) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (at most ``ceiling``):
    every connection is a file, and 1,024, the usual soft limit, is a thousand
    idle sockets. Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. a seccomp filter forbids it
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return ceiling if soft == resource.RLIM_INFINITY else soft


class BurstFilter(logging.Filter):
    """Let the first record of a kind through, then none of that kind for
    ``window_s``; the next one let through says how many were left out.

    A hostile client makes some lines repeat thousands of times a second (an
    exhausted accept() alone wrote ~370 MB in 45 s); one line a burst tells the
    operator as much, and keeps the journal and the disk.
    """

    def __init__(
        self,
        prefixes: Iterable[str],
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.window_s = window_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kind = next((p for p in self.prefixes if message.startswith(p)), None)
        if kind is None:
            return True
        now = self.clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.window_s:
                self._dropped[kind] = self._dropped.get(kind, 0) + 1
                return False
            dropped = self._dropped.pop(kind, 0)
            self._last[kind] = now
        line = message.splitlines()[0].rstrip(".")
        if record.exc_info and record.exc_info[1] is not None:
            line += f": {record.exc_info[1]}"  # the errno says which resource
        if dropped:
            line += f"; {dropped} more in the {self.window_s:g} s before were not logged"
        else:
            line += f"; more within {self.window_s:g} s are counted, not logged"
        record.msg, record.args = line, ()
        record.exc_info = record.exc_text = None  # the same traceback every time
        return True


def quiet_floods(window_s: float = 60.0) -> list[tuple[logging.Logger, BurstFilter]]:
    """Put a ``BurstFilter`` on each logger a flood writes to; returns them, so a
    caller can take them off again."""
    installed = []
    for name, prefixes in FLOOD_LINES.items():
        logger = logging.getLogger(name)
        burst = BurstFilter(prefixes, window_s)
        logger.addFilter(burst)
        installed.append((logger, burst))
    return installed


#: seconds a stopping worker waits for requests in flight before cancelling them
GRACEFUL_SHUTDOWN_S = 10
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class Worker:
    """What a serving process builds its app from: plain values, so the
    supervisor can hand them to each worker it spawns."""

    db: str
    body_timeout_s: float = Limits.body_timeout_s
    max_streams: int = Limits.max_streams

    def app(self):
        from server.app import create_app
        from server.storage import Storage

        if not logging.getLogger().handlers:  # a spawned worker: log as the parent does
            logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
        storage = Storage(self.db, migrate=False)  # the parent migrated it
        return create_app(storage, body_timeout_s=self.body_timeout_s, max_streams=self.max_streams)


class WorkerConfig(uvicorn.Config):
    """uvicorn's config, whose app and protocol class are made when it is
    loaded: in the process that serves, after the spawn."""

    def __init__(
        self, worker: Worker, head_timeout_s: float, max_connections: int, **options
    ) -> None:
        super().__init__("server.app:create_app", http="h11", **options)  # until loaded
        self.worker = worker
        self.head_timeout_s = head_timeout_s
        self.max_connections = max_connections

    def load(self) -> None:
        if not self.loaded:
            self.app = self.worker.app()
            self.http = guarded(self.head_timeout_s, self.max_connections)
            quiet_floods()  # after uvicorn's own logging set-up, in this process
        super().load()


def serve(
    worker: Worker,
    *,
    host: str,
    port: int,
    workers: int = 1,
    limits: Limits = Limits(),  # noqa: B008 (frozen: safe to share)
    forwarded_allow_ips: str = "127.0.0.1",
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> int:
    """Serve until stopped, in this process or in ``workers`` processes; 0, or
    3 when it could not start (as uvicorn.run)."""
    open_files = raise_open_files_limit()
    budget = connection_budget(open_files)
    concurrency = min(limits.concurrency, budget)
    # past the concurrency limit a request gets a 503, at twice it (or at the
    # open-file budget) a connection is closed at once
    most = min(budget, 2 * concurrency)
    if concurrency < limits.concurrency:
        log.warning(
            "the open-file limit (%d) keeps concurrent connections at %d, not %d: "
            "raise LimitNOFILE",
            open_files,
            concurrency,
            limits.concurrency,
        )
    config = WorkerConfig(
        worker,
        limits.head_timeout_s,
        most,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        timeout_keep_alive=limits.keep_alive_s,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        limit_concurrency=concurrency,
        backlog=limits.backlog,
        h11_max_incomplete_event_size=limits.max_head_bytes,
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=forwarded_allow_ips or None,
        server_header=False,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
    quiet_floods()  # after uvicorn.Config, which sets up its loggers
    log.info(
        "serving on %s:%d with %d worker%s: %d open files, 503 past %d concurrent requests "
        "and connections, no more than %d connections, %d live pages, request head within "
        "%g s, body within %g s, trusting X-Forwarded-* from %s",
        host,
        port,
        workers,
        "" if workers == 1 else "s",
        open_files,
        concurrency,
        most,
        limits.max_streams,
        limits.head_timeout_s,
        limits.body_timeout_s,
        forwarded_allow_ips or "nobody",
    )
    if workers > 1:
        try:
            sockets = [config.bind_socket()]
        except SystemExit:  # uvicorn's way of saying the address is taken
            return 3
        Multiprocess(config, sockets=sockets).run()
        return 0
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 3
