"""``vuoro-display``: the Pi booted as a calling display, a browser in kiosk
mode showing the server's ``/display`` page, watched for systemd's watchdog.

Chromium speaks no sd_notify, so this supervisor starts it (under the ``cage``
Wayland compositor on the Pi) and talks to it over the DevTools protocol on a
pipe (``--remote-debugging-pipe``: fds 3 and 4, no port that any local process
could connect to and drive the browser with). It pings ``WATCHDOG=1`` only
while the browser answers and the page's JavaScript does: the display page sets
``window.vuoroDisplayAlive`` (a ``Date.now()`` timestamp) from its own timer,
so a page whose timers stopped is restarted too. A page that is not the
display (the browser's error page at boot without network, a 502 from a proxy)
is reloaded here with back-off: a restart would not bring the server back.
The supervisor exits non-zero when the browser dies, and systemd restarts it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import random
import select
import shlex
import shutil
import signal
import socket
import sys
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.notify import Notifier

log = logging.getLogger("vuoro.display")

DEFAULT_CONFIG = Path("/etc/vuoro/display.env")
DEFAULT_COMPOSITOR = "cage -d --"
BROWSER_NAMES = ("chromium", "chromium-browser")  # Debian; Raspberry Pi OS on some releases
MAX_CONFIG_BYTES = 64 * 1024
MAX_URL_LENGTH = 2000
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # the server's pairing codes: no 0/O, 1/I
CODE_LENGTH = 8
CONFIG_KEYS = ("VUORO_SERVER", "VUORO_DISPLAY_CODE", "VUORO_DISPLAY_ROTATE")
ROTATIONS = (0, 90, 180, 270)  # clockwise; cage's -r turns by 90 degrees
#: the display page updates its heartbeat every few seconds; this old, its timers stopped
DEFAULT_STALE_AFTER_S = 30.0
#: how often to look when no watchdog is set (outside systemd)
DEFAULT_CHECK_INTERVAL_S = 5.0
RELOAD_FIRST_S = 5.0
RELOAD_CAP_S = 60.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

#: what the page says about itself, in one round trip
PROBE = """(() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const beat = window.vuoroDisplayAlive;
  return {
    href: location.href,
    ready: document.readyState,
    status: (nav && nav.responseStatus) || 0,
    age: typeof beat === "number" && isFinite(beat) ? Date.now() - beat : null,
  };
})()"""


class ConfigError(ValueError):
    """display.env is missing or wrong; ``str()`` is one line for the journal."""


class BrowserGone(RuntimeError):
    """The DevTools pipe closed: the browser exited."""


class NotAnswering(RuntimeError):
    """The browser (or the page) did not answer a DevTools call in time."""


@dataclass(frozen=True)
class DisplayConfig:
    server: str  # no trailing slash
    pair_code: str | None = None
    rotate: int = 0  # degrees clockwise: a TV hung in portrait

    @property
    def display_url(self) -> str:
        return f"{self.server}/display"

    def pairing_url(self, code: str, name: str = "") -> str:
        """The server pairs at once and names the display (the Pi's host name)."""
        query = {"pair": code} | ({"name": name} if name else {})
        return f"{self.display_url}?{urllib.parse.urlencode(query)}"


def shown(value: str, limit: int = 60) -> str:
    """A value from the file as it may appear in a one-line message: escaped, cut short."""
    text = ascii(value[:limit])
    return text + ("..." if len(value) > limit else "")


def load_config(path: Path) -> DisplayConfig:
    """Read and check display.env; raise :class:`ConfigError` saying what is wrong."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (make install puts a default there)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB, not a config file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "display.env") -> DisplayConfig:
    """``KEY=value`` lines as systemd's EnvironmentFile= reads them (comments,
    optional quotes); unknown keys are errors, so a typo is not silently ignored."""
    values: dict[str, tuple[int, str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        where = f"{source} line {number}"
        key, equals, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not equals:
            raise ConfigError(f"{where}: expected KEY=value, got {shown(line)}")
        if key not in CONFIG_KEYS:
            raise ConfigError(
                f"{where}: unknown setting {shown(key)} (known: {', '.join(CONFIG_KEYS)})"
            )
        if key in values:
            raise ConfigError(f"{where}: {key} is set twice (also on line {values[key][0]})")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ConfigError(f"{where}: {key} contains control characters: {shown(value)}")
        values[key] = (number, value)
    if not values.get("VUORO_SERVER", (0, ""))[1]:
        raise ConfigError(f"{source}: VUORO_SERVER is not set (e.g. https://queue.example.org)")
    line, server = values["VUORO_SERVER"]
    server = check_server(server, f"{source} line {line}")
    code = None
    if values.get("VUORO_DISPLAY_CODE", (0, ""))[1]:
        line, code = values["VUORO_DISPLAY_CODE"]
        code = check_code(code, f"{source} line {line}")
    rotate = 0
    if values.get("VUORO_DISPLAY_ROTATE", (0, ""))[1]:
        line, text = values["VUORO_DISPLAY_ROTATE"]
        if text not in {str(r) for r in ROTATIONS}:
            raise ConfigError(
                f"{source} line {line}: VUORO_DISPLAY_ROTATE must be 0, 90, 180 or 270 "
                f"(degrees clockwise), not {shown(text)}"
            )
        rotate = int(text)
    return DisplayConfig(server=server, pair_code=code, rotate=rotate)


def check_server(value: str, where: str) -> str:
    """An http(s) base URL with a host; returned without a trailing slash."""
    wanted = "an http(s) URL like https://queue.example.org"
    if len(value) > MAX_URL_LENGTH:
        raise ConfigError(f"{where}: VUORO_SERVER is {len(value)} characters long, not {wanted}")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ConfigError(
            f"{where}: VUORO_SERVER must be {wanted} in plain ASCII "
            f"(an international name in its xn-- form), not {shown(value)}"
        )
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"{where}: VUORO_SERVER must be {wanted}, not {shown(value)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: VUORO_SERVER must be {wanted}, not {shown(value)}")
    if parts.username is not None or parts.query or parts.fragment:
        raise ConfigError(
            f"{where}: VUORO_SERVER must be the server's address alone "
            f"(no user, ?query or #fragment), not {shown(value)}"
        )
    return value.rstrip("/")


def check_code(value: str, where: str) -> str:
    """A pairing code as the management page shows it; spaces and dashes allowed."""
    code = value.replace(" ", "").replace("-", "").upper()
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        raise ConfigError(
            f"{where}: VUORO_DISPLAY_CODE must be the {CODE_LENGTH} characters of a "
            f"pairing code (letters without I and O, digits 2-9), not {shown(value)}"
        )
    return code


# -- the browser ---------------------------------------------------------------


def find_browser() -> str | None:
    """chromium, or chromium-browser as Raspberry Pi OS names it on some releases."""
    for name in BROWSER_NAMES:
        if found := shutil.which(name):
            return found
    return None


def browser_flags(profile: Path, *, under_compositor: bool) -> list[str]:
    """Kiosk mode on a persistent profile, nothing that would ask a question on the TV."""
    flags = [
        "--kiosk",
        f"--user-data-dir={profile}",
        "--remote-debugging-pipe",
        "--no-first-run",
        "--no-default-browser-check",
        "--noerrdialogs",
        "--hide-crash-restore-bubble",
        "--disable-session-crashed-bubble",
        "--disable-infobars",
        "--disable-features=Translate,TranslateUI,MediaRouter,HardwareMediaKeyHandling",
        "--autoplay-policy=no-user-gesture-required",  # the display speaks, nobody taps it
        "--password-store=basic",  # no keyring to unlock
        "--check-for-update-interval=31536000",
        "--overscroll-history-navigation=0",
        "--disable-pinch",
        # the page is the only thing on the screen: its timers must never be throttled
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
    ]
    if under_compositor:
        flags.append("--ozone-platform=wayland")
    return flags


def mark_clean_exit(profile: Path) -> None:
    """After a watchdog kill Chromium offers to restore pages: tell it it ended well."""
    prefs = profile / "Default" / "Preferences"
    try:
        data = json.loads(prefs.read_text(encoding="utf-8"))
        section = data.setdefault("profile", {})
        if section.get("exit_type") == "Normal" and section.get("exited_cleanly") is True:
            return
        section["exit_type"] = "Normal"
        section["exited_cleanly"] = True
        partial = prefs.with_name("Preferences.vuoro-tmp")
        partial.write_text(json.dumps(data), encoding="utf-8")
        partial.replace(prefs)
    except (OSError, ValueError, AttributeError):
        return  # no profile yet, or one Chromium will mend itself


class DevToolsPipe:
    """Chromium's ``--remote-debugging-pipe``: JSON messages ended by NUL, commands
    to its fd 3, replies and events from its fd 4. One call at a time."""

    def __init__(self, reader: int, writer: int) -> None:
        self.reader = reader
        self.writer = writer
        os.set_blocking(writer, False)
        self._buffer = b""
        self._pending: list[dict] = []
        self._next_id = 0
        self.wedged = False  # a command half written: the stream cannot be trusted again

    def call(
        self, method: str, params: dict | None = None, *, session: str | None = None, timeout: float
    ) -> dict:
        """Send one command and wait for its reply; :class:`NotAnswering` after ``timeout``."""
        if self.wedged:
            raise NotAnswering("the browser stopped reading its DevTools pipe")
        self._next_id += 1
        wanted = self._next_id
        message: dict = {"id": wanted, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        deadline = time.monotonic() + timeout
        self._write(json.dumps(message).encode() + b"\0", deadline)
        while True:
            while self._pending:
                reply = self._pending.pop(0)
                if reply.get("id") == wanted:
                    if "error" in reply:
                        raise NotAnswering(f"{method}: {reply['error'].get('message', '?')}")
                    return reply.get("result") or {}
            self._read(deadline, method)

    def _write(self, data: bytes, deadline: float) -> None:
        sent = 0
        while sent < len(data):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [self.writer], [], remaining)[1]:
                if sent:
                    self.wedged = True
                raise NotAnswering("the browser is not reading its DevTools pipe")
            try:
                sent += os.write(self.writer, data[sent:])
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                raise BrowserGone("the browser closed its DevTools pipe") from None

    def _read(self, deadline: float, method: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([self.reader], [], [], remaining)[0]:
            raise NotAnswering(f"no answer to {method}")
        chunk = os.read(self.reader, 65536)
        if not chunk:
            raise BrowserGone("the browser closed its DevTools pipe")
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        if len(self._buffer) > MAX_MESSAGE_BYTES:
            raise BrowserGone("the browser sent an endless DevTools message")
        for raw in messages:
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
                if isinstance(parsed, dict) and "id" in parsed:  # events are not needed
                    self._pending.append(parsed)

    def close(self) -> None:
        for fd in (self.reader, self.writer):
            with contextlib.suppress(OSError):
                os.close(fd)


class BrowserProcess:
    """The compositor (or the browser itself), in its own process group so that
    stopping it stops everything it started."""

    def __init__(self, command: Sequence[str]) -> None:
        child_reads, we_write = _pipe_above(10)
        we_read, child_writes = _pipe_above(10)
        self.command = list(command)
        try:
            self.pid = os.posix_spawnp(
                self.command[0],
                self.command,
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, child_reads, 3),
                    (os.POSIX_SPAWN_DUP2, child_writes, 4),
                ],
                setpgroup=0,
            )
        except OSError:
            os.close(we_read)
            os.close(we_write)
            raise
        finally:
            os.close(child_reads)
            os.close(child_writes)
        self.devtools = DevToolsPipe(we_read, we_write)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code once it ended (negative: the signal), else None."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.returncode

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the child alone (cage ends its browser, Chromium its helpers
        and saves its profile; cage asserts when signalled beside its client),
        then SIGKILL to the group if anything lingers."""
        deadline = time.monotonic() + timeout
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            self.wait(timeout)
        # Chromium's helpers may outlive cage by a moment, writing the cookies
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # whatever lingers in the group
        self.devtools.close()

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _pipe_above(lowest: int) -> tuple[int, int]:
    """A pipe whose ends are numbered above the child's 3 and 4, so the dup2s
    into 3 and 4 cannot overwrite each other; both close on exec."""
    read, write = os.pipe()
    try:
        return (
            fcntl.fcntl(read, fcntl.F_DUPFD_CLOEXEC, lowest),
            fcntl.fcntl(write, fcntl.F_DUPFD_CLOEXEC, lowest),
        )
    finally:
        os.close(read)
        os.close(write)


# -- watching the page ---------------------------------------------------------


@dataclass(frozen=True)
class PageState:
    """What one look at the browser found."""

    alive: bool  # worth a watchdog ping
    status: str  # for STATUS= and the journal
    showing_display: bool = False  # the server's display page, loaded
    wrong_page: bool = False  # an error page or elsewhere: load the display again


def on_display(href: str, display_url: str) -> bool:
    """``href`` is the display page (or below it), not merely the same server."""
    if not href.startswith(display_url):
        return False
    rest = href[len(display_url) :]
    return rest == "" or rest[0] in "/?#"


def judge(probe: dict, display_url: str, stale_after_s: float) -> PageState:
    """The page's own answer to :data:`PROBE`, as a verdict.

    A 5xx (a proxy's "bad gateway" while the server restarts) is worth loading
    again; a 4xx is the server's own answer (a pairing code refused, with the
    form to type another into): reloading would wipe what is being typed."""
    href = str(probe.get("href", ""))
    status = probe.get("status") or 0
    if href in ("", "about:blank"):
        return PageState(True, f"opening {display_url}", wrong_page=True)
    if not on_display(href, display_url) or (isinstance(status, int) and status >= 500):
        where = shown(href, 120) if href else "nothing"
        code = f" (HTTP {status})" if status else ""
        return PageState(True, f"not showing the display: {where}{code}", wrong_page=True)
    if probe.get("ready") != "complete":
        return PageState(True, f"loading {display_url}")
    age = probe.get("age")
    if not isinstance(age, int | float):
        return PageState(True, f"showing {display_url}", showing_display=True)
    if age > stale_after_s * 1000:
        return PageState(
            False, f"the page's heartbeat stopped {age / 1000:.0f} s ago", showing_display=True
        )
    return PageState(True, f"showing {display_url}", showing_display=True)


class Backoff:
    """Reloads of a page that is not the display: 5 s, then doubling to a minute, jittered."""

    def __init__(self, first: float = RELOAD_FIRST_S, cap: float = RELOAD_CAP_S) -> None:
        self.first, self.cap = first, cap
        self.delay = first
        self.next_at = time.monotonic() + first  # the first load is the command line's

    def due(self) -> bool:
        return time.monotonic() >= self.next_at

    def failed(self) -> None:
        self.next_at = time.monotonic() + self.delay * random.uniform(0.8, 1.2)
        self.delay = min(self.delay * 2, self.cap)

    def succeeded(self) -> None:
        self.delay = self.first


class _Stop(Exception):
    """SIGTERM or SIGINT: stop the browser and end well."""


class Supervisor:
    """One browser for the life of this process: when it dies, so do we."""

    def __init__(
        self,
        config: DisplayConfig,
        state_dir: Path,
        browser: Sequence[str],
        compositor: Sequence[str] = (),
        *,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.home = state_dir / "display"
        self.profile = self.home / "chromium"
        self.code_marker = self.home / "pairing-code-used"
        self.browser = list(browser)
        self.compositor = list(compositor)
        self.stale_after_s = stale_after_s
        self.notifier = notifier or Notifier()
        self.interval = self.notifier.ping_interval_s() or DEFAULT_CHECK_INTERVAL_S
        self.call_timeout = max(2.0, self.interval)
        self.session: tuple[str, str] | None = None  # (target id, session id)
        self.code = self._unused_code()

    def _unused_code(self) -> str | None:
        """The baked-in code, unless it was used already: codes are single-use."""
        if not self.config.pair_code:
            return None
        try:
            used = self.code_marker.read_text(encoding="utf-8").strip()
        except OSError:
            used = ""
        return None if used == self.config.pair_code else self.config.pair_code

    @property
    def start_url(self) -> str:
        if not self.code:
            return self.config.display_url
        return self.config.pairing_url(self.code, socket.gethostname())

    def command(self) -> list[str]:
        flags = browser_flags(self.profile, under_compositor=bool(self.compositor))
        compositor = list(self.compositor)
        if compositor and Path(compositor[0]).name == "cage" and self.config.rotate:
            compositor[1:1] = ["-r"] * (self.config.rotate // 90)
        return [*compositor, *self.browser, *flags, self.start_url]

    def run(self) -> int:
        """Until the browser dies (1) or a stop signal (0); 2 if it cannot start."""
        self.profile.mkdir(parents=True, exist_ok=True)
        mark_clean_exit(self.profile)
        if self.code:
            log.info("pairing with the code from display.env")
        command = self.command()
        log.info("starting %s", " ".join(shlex.quote(part) for part in command))
        try:
            process = BrowserProcess(command)
        except OSError as exc:  # not installed: restarting will not install it
            log.error("could not start %s: %s", command[0], exc.strerror or exc)
            self.notifier.status(f"could not start {command[0]}")
            return 2
        previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._watch(process)
        except _Stop:
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            self.notifier.stopping()
            log.info("stopping the browser")
            self._close(process)
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            process.stop()  # also what a dead browser left behind in its group

    def _watch(self, process: BrowserProcess) -> int:
        ready = False
        said = ""
        reload = Backoff()
        while True:
            if process.poll() is not None:
                return self._browser_ended(process)
            try:
                state = self.look(process.devtools)
            except BrowserGone:
                process.wait(5.0)
                return self._browser_ended(process)
            if not ready and state.alive:
                self.notifier.ready(state.status)
                ready = True
            if state.alive:
                self.notifier.watchdog()
            if state.status != said:
                (log.info if state.alive else log.warning)("%s", state.status)
                self.notifier.status(state.status)
                said = state.status
            if state.showing_display:
                reload.succeeded()
                self._code_used()
            elif state.wrong_page and reload.due():
                reload.failed()
                self._navigate(process.devtools)
            time.sleep(self.interval)

    def _close(self, process: BrowserProcess) -> None:
        """Ask Chromium to close (it writes its cookies: the display's pairing),
        so cage ends with its client; signals only if that does not work. (cage
        0.1.4 aborts on an assertion when signalled while its client ends.)"""
        with contextlib.suppress(NotAnswering, BrowserGone):
            process.devtools.call("Browser.close", timeout=self.call_timeout)
        process.wait(10.0)
        process.stop()

    def _browser_ended(self, process: BrowserProcess) -> int:
        code = process.poll()
        text = "the browser exited" + (f" with {code}" if code is not None else "")
        log.error("%s", text)
        self.notifier.status(text)
        return 1

    def look(self, devtools: DevToolsPipe) -> PageState:
        """Ask the browser for its page and the page for its heartbeat."""
        try:
            targets = devtools.call("Target.getTargets", timeout=self.call_timeout)
        except NotAnswering as exc:
            return PageState(False, f"the browser does not answer: {exc}")
        infos = targets.get("targetInfos")
        pages = [t for t in infos or [] if isinstance(t, dict) and t.get("type") == "page"]
        if not pages:
            self.session = None  # a new page is opened, not the closed one navigated
            return PageState(True, "the browser has no page open", wrong_page=True)
        page = next(
            (t for t in pages if on_display(t.get("url", ""), self.config.display_url)), pages[0]
        )
        try:
            session = self._session(devtools, page["targetId"])
            answer = devtools.call(
                "Runtime.evaluate",
                {"expression": PROBE, "returnByValue": True},
                session=session,
                timeout=self.call_timeout,
            )
        except NotAnswering as exc:
            self.session = None
            return PageState(False, f"the page does not answer: {exc}")
        except (KeyError, TypeError):
            self.session = None
            return PageState(False, "the browser's answer made no sense")
        probe = answer.get("result", {}).get("value")
        if not isinstance(probe, dict):
            return PageState(False, "the page's answer made no sense")
        return judge(probe, self.config.display_url, self.stale_after_s)

    def _session(self, devtools: DevToolsPipe, target: str) -> str:
        if self.session is None or self.session[0] != target:
            attached = devtools.call(
                "Target.attachToTarget",
                {"targetId": target, "flatten": True},
                timeout=self.call_timeout,
            )
            self.session = (target, attached["sessionId"])
        return self.session[1]

    def _navigate(self, devtools: DevToolsPipe) -> None:
        url = self.start_url
        log.info("loading %s again", self.config.display_url)
        try:
            if self.session is None:
                devtools.call("Target.createTarget", {"url": url}, timeout=self.call_timeout)
            else:
                session = self.session[1]
                devtools.call(
                    "Page.navigate", {"url": url}, session=session, timeout=self.call_timeout
                )
        except NotAnswering as exc:
            log.warning("could not load the display: %s", exc)

    def _code_used(self) -> None:
        """The server answered the pairing URL: never send that code again."""
        if not self.code:
            return
        try:
            partial = self.code_marker.with_suffix(".tmp")
            partial.write_text(self.code + "\n", encoding="utf-8")
            partial.replace(self.code_marker)
        except OSError as exc:
            log.warning("could not note that the pairing code was used: %s", exc)
            return
        log.info("the pairing code was used; later starts load %s", self.config.display_url)
        self.code = None


def _raise_stop(signum, frame) -> None:
    raise _Stop


# -- the command line ----------------------------------------------------------


def default_state_dir() -> Path:
    """systemd's ``$STATE_DIRECTORY``, else ``$VUORO_STATE_DIR``, else ./var (as the kiosk)."""
    for name in ("STATE_DIRECTORY", "VUORO_STATE_DIR"):
        if os.environ.get(name):
            return Path(os.environ[name].split(":")[0])
    return Path("var")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vuoro-display",
        description="Show the queue server's calling display full screen, watched by systemd.",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"VUORO_SERVER= and an optional VUORO_DISPLAY_CODE= (default {DEFAULT_CONFIG})",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="the browser profile goes in STATE_DIR/display/ "
        "(default: $STATE_DIRECTORY, $VUORO_STATE_DIR or ./var)",
    )
    p.add_argument(
        "--browser",
        default=None,
        help="the browser command (default: chromium or chromium-browser, whichever is there)",
    )
    p.add_argument(
        "--compositor",
        default=DEFAULT_COMPOSITOR,
        help=f"what the browser runs under (default {DEFAULT_COMPOSITOR!r}; '' for none)",
    )
    p.add_argument(
        "--stale-after",
        type=float,
        default=DEFAULT_STALE_AFTER_S,
        metavar="SECONDS",
        help="a page heartbeat older than this stops the watchdog pings "
        f"(default {DEFAULT_STALE_AFTER_S:g})",
    )
    p.add_argument(
        "--check-config", action="store_true", help="check the config file, print it, exit"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"vuoro-display: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(f"server {config.server}, display {config.display_url}")
        if config.pair_code:
            print("pairing code set (used once)")
        return 0
    browser = shlex.split(args.browser) if args.browser else [find_browser() or ""]
    if not browser or not browser[0]:
        print(
            f"vuoro-display: no browser found ({' or '.join(BROWSER_NAMES)} on PATH)",
            file=sys.stderr,
        )
        return 2
    supervisor = Supervisor(
        config,
        args.state_dir or default_state_dir(),
        browser,
        shlex.split(args.compositor),
        stale_after_s=args.stale_after,
    )
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
