"""The display appliance's supervisor (``vuoro-display``) run for real: a real
headless Chromium (the compositor dropped: cage needs a seat) against a small
HTTP server on loopback serving a ``/display`` page with the heartbeat, and
systemd's side played by a real notify datagram socket. Bad display.env files
end with one clear line and exit code 2, before any browser starts."""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import pytest

from appliance.display import ConfigError, judge, parse_config

ROOT = Path(__file__).resolve().parent.parent
DISPLAY = Path(sys.executable).parent / "vuoro-display"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: as root (this machine's tests) Chromium refuses its sandbox; on the Pi it runs as vuoro
BROWSER = f"{CHROMIUM} --headless=new --no-sandbox --disable-gpu"
WATCHDOG_USEC = "1500000"  # WatchdogSec=1.5: the supervisor looks every 0.5 s

CAGE = shutil.which("cage")


@pytest.fixture
def chromium_installed() -> None:
    """`make test` installs Debian's chromium: without it these tests fail, saying so."""
    if CHROMIUM is None:
        pytest.fail("Chromium is needed: run `make test` (tools/sysdeps.sh test installs it)")


@pytest.fixture
def cage_installed(chromium_installed) -> None:
    if CAGE is None:
        pytest.fail("cage is needed: run `make test` (tools/sysdeps.sh test installs it)")


needs_chromium = pytest.mark.usefixtures("chromium_installed")
needs_cage = pytest.mark.usefixtures("cage_installed")


def heartbeat_page(beats: int | None, then: str = "clearInterval(timer)") -> bytes:
    """The display page's promise: ``window.vuoroDisplayAlive`` from its own timer;
    with ``beats`` the timer stops after that many (a page whose timers hung),
    or ``then`` does something worse."""
    limit = "Infinity" if beats is None else str(beats)
    return f"""<!doctype html><meta charset="utf-8"><title>Display</title>
<script>
  let beats = 0;
  window.vuoroDisplayAlive = Date.now();
  const timer = setInterval(() => {{
    window.vuoroDisplayAlive = Date.now();
    if (++beats >= {limit}) {then};
  }}, 300);
  let size = "";
  setInterval(() => {{  // what the screen gave it, once it settled
    const now = innerWidth + "x" + innerHeight;
    if (now !== size) fetch("/size?" + (size = now));
  }}, 300);
</script><h1>A042 → 3</h1>""".encode()


class PageServer:
    """``/display`` (and ``/display?pair=...``) on loopback; remembers what was asked."""

    def __init__(self, beats: int | None = None, port: int = 0, then: str = "") -> None:
        self.requests: list[str] = []
        self.page = heartbeat_page(beats, then) if then else heartbeat_page(beats)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                if self.path.split("?")[0] != "/display":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(owner.page)))
                self.end_headers()
                self.wfile.write(owner.page)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class NotifySocket:
    """What systemd listens on: a Unix datagram socket, read with arrival order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[str] = []
        #: the supervisor sending to it: once that has ended, waiting longer is pointless
        self.sender: subprocess.Popen | None = None

    def drain(self, seconds: float) -> list[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
        return self.messages

    def wait_for(self, wanted: str, timeout: float = 60.0, after: int = 0) -> int:
        """The index of the first message from ``after`` on containing ``wanted``
        (bounded: a browser's start is slow on a busy machine)."""
        deadline = time.monotonic() + timeout
        ended = False
        while time.monotonic() < deadline:
            for index in range(after, len(self.messages)):
                if wanted in self.messages[index]:
                    return index
            if ended:
                raise AssertionError(
                    f"no {wanted!r}: the supervisor exited with {self.sender.returncode} "
                    f"after {self.messages[after:]}:\n{output(self.sender)}"
                )
            ended = self.sender is not None and self.sender.poll() is not None
            self.drain(0.1)  # what it sent before it ended, then one last look
        raise AssertionError(f"no {wanted!r} within {timeout} s: {self.messages[after:]}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    listener = NotifySocket(tmp_path / "notify")
    yield listener
    listener.close()


def start(config: Path, state: Path, notify: NotifySocket, *extra: str) -> subprocess.Popen:
    notify.sender = subprocess.Popen(
        [
            str(DISPLAY),
            "--config",
            str(config),
            "--state-dir",
            str(state),
            "--browser",
            BROWSER,
            "--compositor",
            "",
            *extra,
        ],
        env=os.environ | {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": WATCHDOG_USEC},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return notify.sender


def output(process: subprocess.Popen, timeout: float = 30) -> str:
    """All it printed, once it ended (killed after ``timeout``); asked again, the same."""
    if not hasattr(process, "printed"):
        try:
            process.printed, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.printed, _ = process.communicate()
    return process.printed


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return output(process)


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "display.env"
    path.write_text(text, encoding="utf-8")
    return path


def browser_pid(supervisor: subprocess.Popen) -> int:
    found = children(supervisor.pid)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def page_server():
    servers: list[PageServer] = []

    def make(beats: int | None = None, then: str = "") -> PageServer:
        servers.append(PageServer(beats, then=then))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@needs_chromium
def test_ready_then_pings_while_the_page_beats_then_a_clean_stop(tmp_path, notify, page_server):
    server = page_server()
    env = write_env(tmp_path, f"VUORO_SERVER={server.url}/\n")  # a trailing slash is fine
    process = start(env, tmp_path / "state", notify)
    try:
        ready = notify.wait_for("READY=1")
        showing = notify.wait_for(f"STATUS=showing {server.url}/display", after=ready)
        notify.wait_for("WATCHDOG=1", after=showing)
        while notify.messages[showing:].count("WATCHDOG=1") < 5:
            notify.wait_for("WATCHDOG=1", after=len(notify.messages))
    finally:
        out = stop(process)
    assert process.returncode == 0, out
    assert notify.drain(0.3)[-1] == "STOPPING=1"
    assert "/display" in server.requests
    assert (tmp_path / "state/display/chromium").is_dir(), "a persistent profile"


@needs_chromium
def test_pings_stop_when_the_pages_heartbeat_stops(tmp_path, notify, page_server):
    server = page_server(beats=3)
    env = write_env(tmp_path, f"VUORO_SERVER={server.url}\n")
    process = start(env, tmp_path / "state", notify, "--stale-after", "2")
    try:
        ready = notify.wait_for("READY=1")
        stopped = notify.wait_for("STATUS=the page's heartbeat stopped", after=ready)
        notify.drain(2.0)  # four of the supervisor's looks
        assert process.poll() is None, "hung, not dead: only the watchdog can tell"
    finally:
        out = stop(process)
    assert "WATCHDOG=1" in notify.messages[ready:stopped], "it pinged while the page beat"
    after = notify.drain(0.3)[stopped:]
    assert "WATCHDOG=1" not in after[: after.index("STOPPING=1")], after
    assert "heartbeat stopped" in out


@needs_chromium
def test_pings_stop_when_the_pages_javascript_hangs(tmp_path, notify, page_server):
    """A script in an endless loop: the page's main thread never answers again."""
    server = page_server(beats=3, then="for (;;) {}")
    env = write_env(tmp_path, f"VUORO_SERVER={server.url}\n")
    process = start(env, tmp_path / "state", notify)
    try:
        ready = notify.wait_for("READY=1")
        hung = notify.wait_for("STATUS=the page does not answer", after=ready)
        notify.drain(2.0)
        assert process.poll() is None, "hung, not dead: only the watchdog can tell"
    finally:
        out = stop(process)
    assert process.returncode == 0, out
    after = notify.drain(0.3)[hung:]
    assert "WATCHDOG=1" not in after[: after.index("STOPPING=1")], after


@needs_chromium
def test_pings_stop_when_the_browser_freezes(tmp_path, notify, page_server):
    """The browser process stopped (SIGSTOP): alive to the kernel, deaf to us."""
    server = page_server()
    env = write_env(tmp_path, f"VUORO_SERVER={server.url}\n")
    process = start(env, tmp_path / "state", notify)
    browser = None
    try:
        showing = notify.wait_for(f"STATUS=showing {server.url}/display")
        notify.wait_for("WATCHDOG=1", after=showing)
        browser = browser_pid(process)
        os.kill(browser, signal.SIGSTOP)
        frozen = notify.wait_for("STATUS=the browser does not answer", after=showing)
        while_frozen = notify.drain(2.0)[frozen:]  # before it may answer again
        assert process.poll() is None
    finally:
        if browser:
            os.kill(browser, signal.SIGCONT)
        out = stop(process)
    assert "WATCHDOG=1" not in while_frozen, out


@needs_chromium
def test_the_supervisor_exits_non_zero_when_the_browser_dies(tmp_path, notify, page_server):
    server = page_server()
    env = write_env(tmp_path, f"VUORO_SERVER={server.url}\n")
    process = start(env, tmp_path / "state", notify)
    try:
        notify.wait_for(f"STATUS=showing {server.url}/display")
        os.kill(browser_pid(process), signal.SIGKILL)
        output(process, timeout=60)
    finally:
        out = stop(process)
    assert process.returncode == 1, out
    gone = notify.wait_for("STATUS=the browser exited")
    assert "WATCHDOG=1" not in notify.drain(0.3)[gone:]
    assert "the browser exited" in out


@needs_chromium
def test_a_baked_in_pairing_code_is_used_on_the_first_start_only(tmp_path, notify, page_server):
    server = page_server()
    env = write_env(tmp_path, f"VUORO_SERVER={server.url}\nVUORO_DISPLAY_CODE=abcd-2345\n")
    for _ in range(2):
        process = start(env, tmp_path / "state", notify)
        try:
            notify.wait_for(f"STATUS=showing {server.url}/display", after=len(notify.messages))
        finally:
            out = stop(process)
        assert process.returncode == 0, out
    name = urllib.parse.quote_plus(socket.gethostname())  # the display's name on the server
    named = f"/display?pair=ABCD2345&name={name}"
    assert server.requests.count(named) == 1, server.requests
    pages = [path for path in server.requests if path.startswith("/display")]
    assert pages[-1] == "/display", "the second start loads the display plainly"
    assert (tmp_path / "state/display/pairing-code-used").read_text() == "ABCD2345\n"
    # a new code from the technician is used once again
    write_env(tmp_path, f"VUORO_SERVER={server.url}\nVUORO_DISPLAY_CODE=WXYZ6789\n")
    process = start(env, tmp_path / "state", notify)
    try:
        notify.wait_for(f"STATUS=showing {server.url}/display", after=len(notify.messages))
    finally:
        stop(process)
    assert f"/display?pair=WXYZ6789&name={name}" in server.requests


@needs_chromium
def test_without_the_server_it_keeps_pinging_and_loads_the_display_once_it_answers(
    tmp_path, notify
):
    """At boot without network Chromium shows its error page: a restart would not
    help, so the supervisor keeps the watchdog fed and loads the page again."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = write_env(tmp_path, f"VUORO_SERVER=http://127.0.0.1:{port}\n")
    process = start(env, tmp_path / "state", notify)
    server = None
    try:
        ready = notify.wait_for("READY=1")
        waiting = notify.wait_for("STATUS=not showing the display", after=ready)
        notify.wait_for("WATCHDOG=1", after=waiting)
        server = PageServer(port=port)  # the server comes up where the display looks
        notify.wait_for(f"STATUS=showing http://127.0.0.1:{port}/display", after=waiting)
    finally:
        out = stop(process)
        if server:
            server.close()
    assert process.returncode == 0, out
    assert "WATCHDOG=1" in notify.messages[waiting:], "fed while it waited for the server"


BAD_FILES = {
    "empty": ("", "VUORO_SERVER is not set"),
    "no server": ("# just a comment\nVUORO_DISPLAY_CODE=ABCD2345\n", "VUORO_SERVER is not set"),
    "blank server": ("VUORO_SERVER=\n", "VUORO_SERVER is not set"),
    "no scheme": ("VUORO_SERVER=queue.example.org\n", "must be an http(s) URL"),
    "ftp": ("VUORO_SERVER=ftp://queue.example.org\n", "must be an http(s) URL"),
    "no host": ("VUORO_SERVER=https://\n", "must be an http(s) URL"),
    "bad port": ("VUORO_SERVER=https://q.example.org:99999\n", "must be an http(s) URL"),
    "user in it": ("VUORO_SERVER=https://me:pw@q.example.org\n", "address alone"),
    "query": ("VUORO_SERVER=https://q.example.org/?x=1\n", "address alone"),
    "escape codes": ("VUORO_SERVER=https://q.example.org\x1b[2J\n", "control characters"),
    "unicode host": ("VUORO_SERVER=https://jono.äänekoski.fi\n", "xn-- form"),
    "right-to-left": ("VUORO_SERVER=https://q.example.org/\u202eevil\n", "plain ASCII"),
    "javascript": ("VUORO_SERVER=javascript:alert(1)\n", "must be an http(s) URL"),
    "huge url": ("VUORO_SERVER=https://q.example.org/" + "a" * 5000 + "\n", "characters long"),
    "no equals": ("VUORO_SERVER https://q.example.org\n", "expected KEY=value"),
    "typo": ("VUORO_SERVER=https://q.example.org\nVUORO_DISPLAY_COED=ABCD2345\n", "unknown"),
    "twice": ("VUORO_SERVER=https://a.example.org\nVUORO_SERVER=https://b.example.org\n", "twice"),
    "bad code": ("VUORO_SERVER=https://q.example.org\nVUORO_DISPLAY_CODE=ABCD1234\n", "pairing"),
    "short code": ("VUORO_SERVER=https://q.example.org\nVUORO_DISPLAY_CODE=ABC\n", "pairing"),
    "unicode code": ("VUORO_SERVER=https://q.example.org\nVUORO_DISPLAY_CODE=ÄBC2345\n", "pairing"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_bad_display_env_is_one_clear_line_and_exit_2(tmp_path, name):
    text, says = BAD_FILES[name]
    env = write_env(tmp_path, text)
    ran = subprocess.run(
        [str(DISPLAY), "--config", str(env), "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 2, ran.stdout + ran.stderr
    line = ran.stderr
    assert line.endswith("\n") and line.count("\n") == 1, repr(line)
    assert line.startswith("vuoro-display: ") and says in line, line
    assert line.isascii() and line[:-1].isprintable(), repr(line)
    assert len(line) < 400, "the value is cut short"
    assert not (tmp_path / "state").exists(), "nothing started"


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("missing", None, "not found"),
        ("huge", b"# x\n" * 300_000, "larger than 64 KiB"),
        ("not utf-8", b"VUORO_SERVER=https://q.example.org/\xff\xfe\n", "not UTF-8"),
        ("nul bytes", b"VUORO_SERVER=https://q.example.org\x00\n", "control characters"),
        ("binary", bytes(range(256)) * 4, "not UTF-8"),
    ],
)
def test_an_unreadable_display_env_is_one_clear_line_and_exit_2(tmp_path, name, data, says):
    env = tmp_path / "display.env"
    if data is not None:
        env.write_bytes(data)
    ran = subprocess.run(
        [str(DISPLAY), "--config", str(env)], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.count("\n") == 1 and says in ran.stderr, ran.stderr
    assert ran.stderr.isascii() and ran.stderr[:-1].isprintable(), repr(ran.stderr)


@pytest.mark.parametrize(
    "option",
    [
        ["--compositor", "no-such-compositor --"],
        ["--browser", "no-such-browser", "--compositor", ""],
    ],
)
def test_a_missing_compositor_or_browser_is_one_line_and_exit_2(tmp_path, option):
    env = write_env(tmp_path, "VUORO_SERVER=https://q.example.org\n")
    ran = subprocess.run(
        [str(DISPLAY), "--config", str(env), "--state-dir", str(tmp_path / "state"), *option],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 2, ran.stderr
    assert f"could not start {option[1].split()[0]}: No such file" in ran.stderr


def test_the_shipped_display_env_is_valid():
    ran = subprocess.run(
        [str(DISPLAY), "--config", str(ROOT / "systemd/display.env"), "--check-config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert "https://queue.example.org/display" in ran.stdout


def test_quotes_comments_and_spaced_codes_as_systemd_reads_them():
    config = parse_config(
        "# the fleet's server\n\n"
        "  VUORO_SERVER = 'https://jono.example.fi/queue/'  \n"
        'VUORO_DISPLAY_CODE="abcd 2345"\n'
    )
    assert config.server == "https://jono.example.fi/queue"
    assert config.display_url == "https://jono.example.fi/queue/display"
    assert config.pairing_url(config.pair_code) == (
        "https://jono.example.fi/queue/display?pair=ABCD2345"
    )
    assert config.pairing_url("ABCD2345", "aula-tv 1").endswith("?pair=ABCD2345&name=aula-tv+1")
    with pytest.raises(ConfigError, match="line 2"):
        parse_config("VUORO_SERVER=https://q.example.org\nnonsense\n")


def test_what_counts_as_the_display_and_as_alive():
    url = "https://q.example.org/display"
    beating = {"href": url, "ready": "complete", "status": 200, "age": 400}
    assert judge(beating, url, 30).alive
    assert not judge(beating | {"age": 31_000}, url, 30).alive, "its timers stopped"
    no_heartbeat = judge(beating | {"age": None}, url, 30)
    assert no_heartbeat.alive and not no_heartbeat.wrong_page, "the pairing form, typed into"
    for elsewhere in (
        {"href": "chrome-error://chromewebdata/", "status": 0},
        {"status": 502},
        {"href": "https://q.example.org/displayed"},
        {"href": "https://q.example.org.evil.example/display"},
        {"href": "about:blank"},
    ):
        state = judge(beating | elsewhere, url, 30)
        assert state.alive and state.wrong_page, elsewhere
    assert judge(beating | {"href": url + "?pair=ABCD2345"}, url, 30).showing_display
    refused = judge(beating | {"href": url + "?pair=ABCD2345", "status": 410, "age": None}, url, 30)
    assert refused.showing_display and not refused.wrong_page, "the form, to type another code"


# -- under cage, as on the Pi ---------------------------------------------------

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def seatless(page_server):
    """cage with wlroots' headless backend (no seat, no screen, no input devices),
    run as an unprivileged user as the unit runs it as vuoro: cage refuses root,
    and Chromium keeps its own sandbox on. pytest's tmp_path is root's alone, so
    a directory of its own."""
    prefix = AS_NOBODY if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="vuoro-display-"))
    base.chmod(0o755)
    for sub in ("xdg", "state"):
        (base / sub).mkdir(mode=0o700)
        if prefix:
            shutil.chown(base / sub, "nobody")
    probe = subprocess.run(
        [*prefix, "unshare", "--user", "--pid", "--net", "--fork", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        shutil.rmtree(base)
        pytest.skip(f"no unprivileged namespaces for Chromium's sandbox here: {probe.stderr}")
    # a checkout in a directory only root may enter (`mktemp -d` makes one 0700):
    # the unprivileged user cannot even start the supervisor, and nothing is sent
    runs = subprocess.run(
        [*prefix, str(DISPLAY), "--check-config", "--config", str(ROOT / "systemd/display.env")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if runs.returncode != 0:
        shutil.rmtree(base)
        pytest.skip(
            f"the unprivileged user cannot run {DISPLAY} (is every directory "
            f"above it searchable by others?): {runs.stderr.strip()}"
        )
    notify = NotifySocket(base / "notify")
    notify.path.chmod(0o777)
    server = page_server()

    def start_display(*config_lines: str, under: Sequence[str] = ()) -> subprocess.Popen:
        env = base / "display.env"
        env.write_text("\n".join([f"VUORO_SERVER={server.url}", *config_lines]) + "\n")
        env.chmod(0o644)
        notify.sender = subprocess.Popen(
            [
                *(under or [*prefix, str(DISPLAY)]),
                "--config",
                str(env),
                "--state-dir",
                str(base / "state"),
            ],
            env=os.environ
            | {
                "NOTIFY_SOCKET": str(notify.path),
                "WATCHDOG_USEC": WATCHDOG_USEC,
                "XDG_RUNTIME_DIR": str(base / "xdg"),
                "HOME": str(base / "state"),
                "WLR_BACKENDS": "headless",
                "WLR_LIBINPUT_NO_DEVICES": "1",
                "WLR_RENDERER": "pixman",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return notify.sender

    yield server, notify, start_display
    notify.close()
    shutil.rmtree(base, ignore_errors=True)


@needs_cage
def test_under_cage_in_portrait_it_pings_and_stops_cleanly(seatless):
    """The defaults as the unit runs them: cage -d, chromium found on PATH, on
    Wayland; VUORO_DISPLAY_ROTATE=90 turns the screen for a TV hung upright."""
    server, notify, start_display = seatless
    process = start_display("VUORO_DISPLAY_ROTATE=90")
    try:
        showing = notify.wait_for(f"STATUS=showing {server.url}/display")
        while notify.messages[showing:].count("WATCHDOG=1") < 3:
            notify.wait_for("WATCHDOG=1", after=len(notify.messages))
    finally:
        out = stop(process)
    assert process.returncode == 0, out
    assert "starting cage -r -d -- " in out and "--ozone-platform=wayland" in out
    assert "Assertion" not in out, "cage is stopped alone, not beside its browser"
    assert notify.drain(0.3)[-1] == "STOPPING=1"
    sizes = [path.split("?")[1] for path in server.requests if path.startswith("/size?")]
    width, height = map(int, sizes[-1].split("x"))
    assert height > width, f"portrait: {sizes}"


@needs_cage
def test_under_cage_the_supervisor_exits_non_zero_when_the_browser_dies(seatless):
    server, notify, start_display = seatless
    process = start_display()
    try:
        notify.wait_for(f"STATUS=showing {server.url}/display")
        cage = browser_pid(process)
        browsers = [
            pid for pid in children(cage) if Path(f"/proc/{pid}/comm").read_text() == "chromium\n"
        ]
        assert len(browsers) == 1, browsers
        os.kill(browsers[0], signal.SIGKILL)
        output(process, timeout=60)
    finally:
        out = stop(process)
    assert process.returncode == 1, out
    gone = notify.wait_for("STATUS=the browser exited")
    assert "WATCHDOG=1" not in notify.drain(0.3)[gone:]


UNIT = ROOT / "systemd/vuoro-display.service"


def filtered(*drops: str) -> list[str]:
    """vuoro-display as nobody under the unit's system-call filter (less ``drops``)."""
    user = ["--user", "nobody"] if os.geteuid() == 0 else []
    dropped = [arg for name in drops for arg in ("--drop", name)]
    return [
        sys.executable,
        str(ROOT / "tests/syscall_filter.py"),
        str(UNIT),
        *dropped,
        *user,
        "--",
        "-m",
        "appliance.display",
    ]


@needs_cage
def test_cage_and_chromium_run_under_the_units_system_call_filter(seatless):
    """The unit's SystemCallFilter= lines applied with libseccomp as systemd
    applies them (after User=), Chromium's sandbox on: what the unit relaxes
    is what Chromium needs, and no more than the page, the pings and a clean
    stop need."""
    server, notify, start_display = seatless
    process = start_display(under=filtered())
    try:
        showing = notify.wait_for(f"STATUS=showing {server.url}/display")
        while notify.messages[showing:].count("WATCHDOG=1") < 3:
            notify.wait_for("WATCHDOG=1", after=len(notify.messages))
    finally:
        out = stop(process)
    assert process.returncode == 0, out
    assert notify.drain(0.3)[-1] == "STOPPING=1"


@needs_cage
@pytest.mark.parametrize("needed", ["chroot", "capset"])
def test_without_what_the_unit_adds_back_chromium_refuses_to_start(seatless, needed):
    """The filter really applies, and the calls the unit allows beyond the
    kiosk's are needed: without them Chromium's sandbox fails and so does the
    browser; the supervisor exits non-zero for systemd to see."""
    _, notify, start_display = seatless
    process = start_display(under=filtered(needed))
    try:
        output(process, timeout=120)
    finally:
        out = stop(process)
    assert process.returncode == 1, out
    assert "the browser exited" in out
    assert "WATCHDOG=1" not in notify.drain(0.3)
