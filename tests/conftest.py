"""Shared fixtures: state DBs, config files, and a virtual screen for the real app."""

from __future__ import annotations

import itertools
import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.emulator_process import Emulator
from tests.kiosk_driver import VirtualScreen
from tests.postgres import Cluster, postgres_cluster, postgres_url  # noqa: F401 (fixtures)

TWO_SERVICES = """
[kiosk]
language = "fi"
return_home_s = 2
min_tap_interval_s = 0.5

[branch]
name = "Kaupungin palvelupiste Äänekoski"
timezone = "Europe/Helsinki"

[ticket]
url_template = "https://jono.example.fi/t/{token}"
footer = "Kiitos käynnistä – Tack – Aitäh: õ š ž"

[printer]
backend = "emulator"

[[services]]
id = "payments"
prefix = "A"
name = { fi = "Maksut", sv = "Betalningar", en = "Payments" }

[[services]]
id = "permits"
prefix = "B"
name = { fi = "Luvat ja lisenssit", en = "Permits" }
text = { fi = "Ota henkilöllisyystodistus esiin" }
"""


#: The test modules that take longest (``--durations=0`` of a whole run, summed
#: per module; bench/ is collected too), longest first. Under pytest-xdist's
#: ``--dist loadfile --no-loadscope-reorder`` (the Makefile's) modules go to
#: the workers in collection order: these go first, so no long module starts
#: near the end while the other workers have nothing left to do. Only the
#: order depends on this list; a module missing from it runs all the same.
LONGEST_FIRST = (
    "test_display_voice",
    "test_staff_security",
    "test_counter_screen",
    "test_live",
    "test_chaos_postgresql",
    "test_install",
    "test_sync",
    "test_tree_server",
    "test_roles",
    "test_manage",
    "test_display_appliance",
    "test_display",
    "test_chaos",
    "test_transfer",
    "test_console",
    "test_reports_browser",
    "test_roles_pages",
    "test_reports",
    "test_counter_ticket_print",
    "test_calling",
    "test_ticket_page",
    "test_join_page",
    "test_openapi_fuzz",
    "bench_fleet",
    "test_display_page",
    "test_server_storage",
    "test_live_page",
    "test_ticket_alerts",
    "test_callbacks_page",
    "test_callbacks",
    "test_turn_notify",
    "test_join",
    "test_roles_web",
    "test_bad_config",
    "test_migrations",
    "test_server_limits",
    "test_pairing_security",
    "test_cli",
    # the ui phase's longest (its two workers)
    "test_admin_ui",
    "test_kiosk_ui",
    "test_field_faults",
    "test_kiosk_modes_ui",
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first (LONGEST_FIRST), the rest after them in their
    usual order; each module's tests keep theirs (a stable sort by module)."""
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a kiosk.toml (dedented) and return its path."""

    def write(text: str = TWO_SERVICES, name: str = "kiosk.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    """Where tests save the screenshots README shows: a temporary directory, so a
    test run changes no tracked file; `make screenshots` points it at docs/."""
    chosen = os.environ.get("VUORO_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def hung_printer_config(write_config, tmp_path) -> Path:
    """A config whose printer is a FIFO nobody reads: a ticket stays in flight,
    committed and never handed over (the print blocks before the first byte)."""
    fifo = tmp_path / "hung-printer"
    os.mkfifo(fifo)
    return write_config(
        TWO_SERVICES.replace(
            'backend = "emulator"', f'backend = "file"\npath = "{fifo}"\ntimeout_s = 120'
        ),
        name="hung.toml",
    )


@pytest.fixture(scope="session")
def screen() -> Iterator[VirtualScreen]:
    if not shutil.which("Xvfb") or not shutil.which("xdotool"):
        pytest.fail("Xvfb and xdotool are needed: run `make test` (it installs them)")
    display = VirtualScreen()
    yield display
    display.close()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Callable[..., Emulator]]:
    """Start printer emulators (flags as for `vuoro-printer emulator`); all stop after the test."""
    started: list[Emulator] = []

    def start(*flags: str, pty: bool = False) -> Emulator:
        started.append(Emulator(tmp_path / f"emulated{len(started)}", *flags, pty=pty))
        return started[-1]

    yield start
    for each in started:
        each.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path: Path) -> str:
    """Where a server's storage lives: an SQLite file, then a fresh database of
    the test run's own PostgreSQL cluster (``tests/postgres.py``)."""
    if request.param == "sqlite":
        return str(tmp_path / "server.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def storage(database: str):
    """A server's storage with the demo branch, on each database."""
    from server import branch_file
    from server.storage import Storage
    from tests.server_data import DEMO

    store = Storage(database)
    store.put_branch(*branch_file.load(DEMO))
    yield store
    store.database.dispose()


#: The databases a test of the real server process runs on, each in turn. A
#: module whose tests use the server only as a backdrop (a kiosk's screens,
#: its printer) says ``SERVER_DATABASES = ("sqlite",)``, and why.
SERVER_DATABASES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test that starts a server runs once per database (module-scoped, so
    a module's servers are started once per database); a test that names its
    own ``server_database`` parameters keeps them."""
    if "server_database" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if "server_database" in (names.split(",") if isinstance(names, str) else names):
            return
    backends = getattr(metafunc.module, "SERVER_DATABASES", SERVER_DATABASES)
    metafunc.parametrize("server_database", backends, indirect=True, scope="module")


class ServerDatabases:
    """Fresh databases for test servers on one backend: an SQLite file in the
    server's directory, or a new database of the worker's PostgreSQL cluster."""

    def __init__(self, backend: str, cluster: Cluster | None) -> None:
        self.backend = backend
        self.cluster = cluster
        self.created: list[str] = []

    def new(self, directory: Path) -> Path | str:
        """A database nobody has used yet, for a server whose files go in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        if self.cluster is None:
            return directory / "server.db"
        self.cluster.start()  # a test before may have left it stopped
        self.created.append(self.cluster.create_database())
        return self.cluster.url(self.created[-1])

    def server(self, directory: Path, **options):
        """A server on a new database, its log in ``directory`` (``options`` as for Server)."""
        from tests.server_process import Server

        return Server(self.new(directory), logs=directory, **options)

    def close(self) -> None:
        if self.cluster is not None and self.created:
            self.cluster.start()
            for name in self.created:
                self.cluster.drop_database(name)


@pytest.fixture(scope="module")
def server_database(request) -> Iterator[ServerDatabases]:
    """Where the servers of a test keep their storage: SQLite, then PostgreSQL
    (see pytest_generate_tests)."""
    backend = getattr(request, "param", "sqlite")
    cluster = request.getfixturevalue("postgres_cluster") if backend == "postgresql" else None
    databases = ServerDatabases(backend, cluster)
    yield databases
    databases.close()


class Chromiums:
    """Debian's Chromium, headless, driven by Playwright: launched once per test
    module (a launch costs a second of a core), a fresh context per page."""

    def __init__(self) -> None:
        self._playwright = None
        self._launched: dict[bool, object] = {}

    def get(self, autoplay: bool = False):
        """The module's browser; ``autoplay``: sound plays without a tap, as the
        display appliance starts it."""
        from playwright.sync_api import sync_playwright

        from tests.web import CHROMIUM, CHROMIUM_ARGS

        if autoplay not in self._launched:
            if not Path(CHROMIUM).exists():
                pytest.fail("Chromium is needed: run `make test` (it installs Debian's chromium)")
            if self._playwright is None:
                self._playwright = sync_playwright().start()
            flags = ["--autoplay-policy=no-user-gesture-required"] if autoplay else []
            self._launched[autoplay] = self._playwright.chromium.launch(
                executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *flags]
            )
        return self._launched[autoplay]

    def close_pages(self) -> None:
        """What a test opened goes with it: the next test starts with none."""
        for launched in self._launched.values():
            for context in launched.contexts:
                context.close()

    def close(self) -> None:
        for launched in self._launched.values():
            launched.close()
        if self._playwright is not None:
            self._playwright.stop()


@pytest.fixture(scope="module")
def chromiums() -> Iterator[Chromiums]:
    browsers = Chromiums()
    yield browsers
    browsers.close()


@pytest.fixture
def browser(chromiums):
    """Debian's Chromium, headless (``browser.new_page()`` gives a fresh context)."""
    yield chromiums.get()
    chromiums.close_pages()


@pytest.fixture
def chromium(chromiums):
    """Chromium as a display runs it: sound plays without a tap (the display
    appliance starts it so)."""
    yield chromiums.get(autoplay=True)
    chromiums.close_pages()


@pytest.fixture
def branch(tmp_path, server_database):
    """The demo branch on a real server (ticket URLs pointing at it) and a paired kiosk."""
    from tests.server_process import DEMO_BRANCH

    server = server_database.server(tmp_path / "server")
    demo = tmp_path / "branch.toml"
    demo.write_text(
        DEMO_BRANCH.read_text(encoding="utf-8").replace("http://127.0.0.1:8000", server.url),
        encoding="utf-8",
    )
    server.load_branch(demo)
    kiosk_dir = tmp_path / "kiosk"
    server.pair(kiosk_dir, "door")
    yield server, kiosk_dir
    server.stop()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory, server_database):
    """One real server for the tests of a module, on each database: a server's
    start costs two seconds of a core. Each test takes a branch of its own on it
    (``own_branch``), so no test sees another's queue; a test whose check is
    the server's own state (a lock-out of the loopback address, every kiosk it
    knows) keeps a server of its own (``branch``)."""
    server = server_database.server(tmp_path_factory.mktemp("server"))
    yield server
    server.stop()


_branch_numbers = itertools.count(1)


@dataclass
class OwnBranch:
    """A test's own branch on its module's server: the demo branch's services
    under another id, and a kiosk paired with it."""

    server: object
    kiosk_dir: Path
    id: str
    toml: Path  # the branch file it was loaded from

    def name(self, username: str) -> str:
        """A staff username of this branch's own (usernames are server-wide)."""
        return f"{username}.{self.id}"


@pytest.fixture
def own_branch(module_server, tmp_path) -> OwnBranch:
    """The demo branch, under an id of the test's own, on the module's server
    (ticket URLs pointing at it), and a kiosk paired with it."""
    from tests.server_process import DEMO_BRANCH

    ident = f"b{next(_branch_numbers)}"
    text = DEMO_BRANCH.read_text(encoding="utf-8")
    assert 'id = "demo"' in text
    toml = tmp_path / "branch.toml"
    toml.write_text(
        text.replace('id = "demo"', f'id = "{ident}"', 1).replace(
            "http://127.0.0.1:8000", module_server.url
        ),
        encoding="utf-8",
    )
    module_server.load_branch(toml)
    kiosk_dir = tmp_path / "kiosk"
    module_server.pair(kiosk_dir, "door", branch=ident)
    return OwnBranch(module_server, kiosk_dir, ident, toml)
