"""The kiosk's TOML config: read, check, and explain mistakes by file and line.

A technician editing ``/etc/vuoro/kiosk.toml`` over SSH should get
``kiosk.toml:14: unknown key 'nmae' in [[services]] #2 (did you mean 'name'?)``
rather than a traceback. Anything that can still be shown safely (a long
name, an emoji) is accepted and rendered safely later.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kiosk.i18n import LANGUAGES
from printer.escpos_lib import profiles
from printer.layout import DEFAULT_PROFILE
from sync import schedule, tree

MAX_TEXT = 500
MODES = ("standalone", "paired")
MAX_SERVICES = 40
MAX_LOCATION = 120  # one line on the paper and the screen
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class ConfigError(ValueError):
    """A config mistake, located: ``str()`` is ``file:line: message``."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


@dataclass(frozen=True)
class ServiceConfig:
    id: str
    prefix: str
    names: dict[str, str]
    texts: dict[str, str]
    schedule: dict = field(default_factory=dict)  # sync.schedule.Schedule.to_json()
    daily_cap: int | None = None
    category: str | None = None  # the [[categories]] id it is listed under
    locations: dict[str, str] = field(default_factory=dict)  # where to go, per language

    def as_state(self) -> dict:
        """The service as ``tickets.apply_standalone_config`` takes it."""
        return {
            "id": self.id,
            "prefix": self.prefix,
            "names": self.names,
            "texts": self.texts,
            "schedule": self.schedule,
            "daily_cap": self.daily_cap,
            "category": self.category,
            "locations": self.locations,
        }


@dataclass(frozen=True)
class CategoryConfig:
    """A button of the service tree that opens a level of services and categories."""

    id: str
    names: dict[str, str]
    position: int = 0  # among the level's items; a service's is its place in [[services]]
    parent: str | None = None  # None: the home screen's top level

    def as_state(self) -> dict:
        """The category as ``tickets.apply_standalone_config`` takes it."""
        return {
            "id": self.id,
            "names": self.names,
            "position": self.position,
            "parent": self.parent,
        }


@dataclass(frozen=True)
class AdminConfig:
    """The hidden admin menu: its PIN (hashed) and the machine's power commands."""

    pin_hash: str = ""  # argon2; empty keeps the menu shut
    reboot_command: tuple[str, ...] = ("systemctl", "reboot")
    poweroff_command: tuple[str, ...] = ("systemctl", "poweroff")
    idle_s: float = 60.0  # the menu closes itself after this long untouched
    hold_s: float = 3.0  # the long press in the top-left corner that opens it


SPEECH_ENGINES = ("espeak", "piper")
HEADSET_SOURCES = ("auto", "usb", "jack", "none")
_ALSA_DEVICE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_:=,.-]{0,99}")
_ESPEAK_VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]{0,39}")


@dataclass(frozen=True)
class SpeechConfig:
    """The kiosk's voice (``kiosk.voice``): off at start unless ``always_on``."""

    enabled: bool = False  # speech at start; a key or a plugged-in headset switches it on
    always_on: bool = False  # on for every customer, and back on after each
    engine: str = "espeak"  # or "piper"
    voices: dict[str, str] = field(default_factory=dict)  # espeak voice name or Piper .onnx
    speaker_device: str = "default"  # ALSA device of the kiosk's own speaker
    headset_device: str = ""  # ALSA device of the jack; a USB headset plays on its own card
    headset: str = "auto"  # where a headset is looked for: usb, jack, both (auto) or none
    volume: int = 7  # 1 to 10, the level each customer starts at
    words_per_minute: int = 150  # espeak-ng's speed


@dataclass(frozen=True)
class KioskConfig:
    source: str
    language: str = "en"
    languages: tuple[str, ...] = ("en",)
    kiosk_mode: bool = False
    mode: str = "standalone"  # or "paired": services and numbers come from the server
    require_time_sync: bool = True  # an unsynchronised clock gets no dated numbers
    return_home_s: float = 8.0
    language_reset_s: float = 30.0  # a chosen language goes back for the next customer
    warn_before_s: float = 10.0  # a time limit warns this long (or a third of it) before
    min_tap_interval_s: float = 1.5
    max_tickets_per_minute: int = 12
    branch: dict = field(default_factory=dict)
    ticket: dict = field(default_factory=dict)
    printer: dict = field(default_factory=dict)
    services: tuple[ServiceConfig, ...] = ()
    categories: tuple[CategoryConfig, ...] = ()  # the service tree (none: one flat level)
    admin: AdminConfig = field(default_factory=AdminConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)


def embedded_default_text() -> str:
    return (resources.files("kiosk") / "default.toml").read_text(encoding="utf-8")


# -- locating keys in the source text ---------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"-]+)\s*\]\]?")


class _Locator:
    """Finds the line of a key, so errors can point at it."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line_of(self, table: str | None, index: int | None = None, key: str | None = None) -> int:
        start, seen = 0, -1
        if table is not None:
            start = None
            for number, line in enumerate(self.lines):
                match = _HEADER.match(line)
                if match and match.group(2).strip('"') == table:
                    seen += 1
                    if index is None or seen == index:
                        start = number
                        break
            if start is None:
                return len(self.lines) or 1
        if key is None:
            return start + 1
        pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*[=.]")
        for number in range(start + (table is not None), len(self.lines)):
            header = _HEADER.match(self.lines[number])
            if header and table is None:
                name = header.group(2).strip('"')
                if name == key or name.startswith(f"{key}."):
                    return number + 1
            elif header:
                break
            if pattern.match(self.lines[number]):
                return number + 1
        return start + 1


# -- checking ---------------------------------------------------------------


class _Checker:
    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.where = _Locator(text)

    def fail(
        self, message: str, table: str | None, index: int | None = None, key: str | None = None
    ):
        raise ConfigError(self.file, self.where.line_of(table, index, key), message)

    def known_keys(
        self, data: Mapping, allowed: set[str], table: str | None, index: int | None = None
    ) -> None:
        for key in data:
            if key not in allowed:
                hint = difflib.get_close_matches(key, sorted(allowed), n=1)
                label = _label(table, index)
                self.fail(
                    f"unknown key {key!r} in {label}"
                    + (
                        f" (did you mean {hint[0]!r}?)"
                        if hint
                        else f"; known: {', '.join(sorted(allowed))}"
                    ),
                    table,
                    index,
                    key,
                )

    def value(
        self,
        data: Mapping,
        key: str,
        kind: type | tuple[type, ...],
        table: str | None,
        index: int | None = None,
        *,
        default: object = None,
        check: Callable[[object], str | None] | None = None,
    ):
        if key not in data:
            if default is None:
                self.fail(f"{_label(table, index)} needs {key!r}", table, index)
            return default
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(
                k.__name__.replace("str", "text").replace("dict", "table") for k in kinds
            )
            self.fail(f"{key!r} in {_label(table, index)} must be {names}", table, index, key)
        problem = check(value) if check else None
        if problem:
            self.fail(f"{key!r} in {_label(table, index)} {problem}", table, index, key)
        return value

    def texts(
        self, data: Mapping, key: str, table: str, index: int | None, default_language: str
    ) -> dict[str, str]:
        """A text, or a table of texts per language (a text alone is the default language's)."""
        value = self.value(data, key, (str, dict), table, index, default={})
        if isinstance(value, str):
            value = {default_language: value}
        for language, text in value.items():
            if language not in LANGUAGES:
                self.fail(
                    f"{key!r} has unknown language {language!r}; use one of {', '.join(LANGUAGES)}",
                    table,
                    index,
                    key,
                )
            if not isinstance(text, str):
                self.fail(f"{key!r}.{language} must be text", table, index, key)
            if len(text) > MAX_TEXT:
                self.fail(
                    f"{key!r}.{language} is {len(text)} characters; the limit is {MAX_TEXT}",
                    table,
                    index,
                    key,
                )
        return dict(value)


def _label(table: str | None, index: int | None) -> str:
    if table is None:
        return "the top level"
    return f"[[{table}]] #{index + 1}" if index is not None else f"[{table}]"


def _one_of(choices: tuple[str, ...]) -> Callable[[object], str | None]:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def _profile(value: object) -> str | None:
    names = sorted(profiles())
    if value in names:
        return None
    hint = difflib.get_close_matches(str(value), names, n=1)
    return (
        f"{value!r} is not a known printer profile"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
        + "; `vuoro-printer profiles` lists them"
    )


def _short_text(value: object) -> str | None:
    return f"is longer than {MAX_TEXT} characters" if len(str(value)) > MAX_TEXT else None


def _positive(value: object) -> str | None:
    return None if value > 0 else "must be more than 0"


def _timezone(value: object) -> str | None:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        return f'is not a known time zone (e.g. "Europe/Helsinki"), got {value!r}'
    return None


def _url_template(value: object) -> str | None:
    if not re.match(r"^https?://[^\s]+$", str(value)) or "{token}" not in str(value):
        return 'must be an http(s) URL containing {token}, e.g. "https://q.example.org/t/{token}"'
    return None


_LINK_KEYS = {"backend", "profile", "timeout_s", "status", "status_timeout_s"}
PRINTER_KEYS = {
    "emulator": {"backend", "profile", "out", "timeout_s"},
    "file": {"backend", "profile", "path", "timeout_s"},
    "network": _LINK_KEYS | {"host", "port"},
    "serial": _LINK_KEYS | {"device", "baudrate"},
    "usb": _LINK_KEYS | {"vendor_id", "product_id"},
}


def parse(text: str, file: str = "kiosk.toml", base_dir: Path | None = None) -> KioskConfig:
    """Check a config text; raise :class:`ConfigError` naming the line.

    Relative paths in it (the logo) are relative to ``base_dir``, the config
    file's folder (the current one for the embedded default).
    """
    base_dir = base_dir or Path.cwd()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(
            file, int(match.group(1)) if match else None, f"not valid TOML: {message}"
        ) from None
    c = _Checker(file, text)
    c.known_keys(
        data,
        {"kiosk", "branch", "ticket", "printer", "services", "categories", "admin", "speech"},
        None,
    )
    for section in ("kiosk", "branch", "ticket", "printer", "admin", "speech"):
        if not isinstance(data.get(section, {}), dict):
            c.fail(f"{section!r} must be a [{section}] table", None, None, section)

    kiosk = data.get("kiosk", {})
    c.known_keys(
        kiosk,
        {
            "language",
            "languages",
            "kiosk_mode",
            "mode",
            "require_time_sync",
            "return_home_s",
            "language_reset_s",
            "warn_before_s",
            "min_tap_interval_s",
            "max_tickets_per_minute",
        },
        "kiosk",
    )
    language = c.value(
        kiosk,
        "language",
        str,
        "kiosk",
        default="en",
        check=_one_of(LANGUAGES),
    )

    languages = c.value(
        kiosk,
        "languages",
        list,
        "kiosk",
        default=[language],
        check=lambda v: (
            None
            if v and all(x in LANGUAGES for x in v) and len(set(v)) == len(v)
            else f"must list languages from {', '.join(LANGUAGES)}, each once"
        ),
    )
    if language not in languages:
        languages = [language, *languages]

    branch = data.get("branch", {})
    c.known_keys(branch, {"name", "timezone"}, "branch")
    ticket = data.get("ticket", {})
    c.known_keys(ticket, {"url_template", "header", "footer", "logo"}, "ticket")
    logo = c.value(ticket, "logo", str, "ticket", default="")
    if logo:
        logo_path = (base_dir / logo).resolve()
        if not logo_path.is_file():
            c.fail(f"logo {str(logo_path)!r} is not a file", "ticket", None, "logo")
    printer = data.get("printer", {})
    backend = c.value(
        printer,
        "backend",
        str,
        "printer",
        default="emulator",
        check=_one_of(tuple(PRINTER_KEYS)),
    )
    c.known_keys(printer, PRINTER_KEYS[backend], "printer")
    required = {"file": ["path"], "network": ["host"], "serial": ["device"]}
    for key in required.get(backend, []):
        c.value(printer, key, (str, int), "printer")
    for key in ("timeout_s", "status_timeout_s", "port", "baudrate"):
        c.value(printer, key, (int, float), "printer", default=1, check=_positive)
    c.value(printer, "status", bool, "printer", default=True)
    c.value(printer, "profile", str, "printer", default=DEFAULT_PROFILE, check=_profile)

    services_data = data.get("services")
    if not services_data:
        raise ConfigError(
            file, None, "no services: add at least one [[services]] table with id, prefix and name"
        )
    if not isinstance(services_data, list) or len(services_data) > MAX_SERVICES:
        c.fail(
            f"'services' must be 1 to {MAX_SERVICES} [[services]] tables", None, None, "services"
        )
    services: list[ServiceConfig] = []
    for index, entry in enumerate(services_data):
        c.known_keys(
            entry,
            {
                "id",
                "prefix",
                "name",
                "text",
                "hours",
                "exceptions",
                "last_ticket",
                "daily_cap",
                "category",
                "location",
            },
            "services",
            index,
        )
        service_id = c.value(
            entry,
            "id",
            str,
            "services",
            index,
            check=lambda v: (
                None
                if re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", v)
                else "must be lower-case letters, digits, - or _ (at most 64)"
            ),
        )
        prefix = c.value(
            entry,
            "prefix",
            str,
            "services",
            index,
            check=lambda v: (
                None if re.fullmatch(r"[A-Z]{1,3}", v) else "must be 1 to 3 letters A-Z"
            ),
        )
        names = c.texts(entry, "name", "services", index, language)
        if not names or not any(n.strip() for n in names.values()):
            c.fail(f"[[services]] #{index + 1} needs a 'name'", "services", index)
        for earlier in services:
            if earlier.id == service_id:
                c.fail(f"service id {service_id!r} is used twice", "services", index, "id")
            if earlier.prefix == prefix:
                c.fail(
                    f"prefix {prefix!r} is used by {earlier.id!r} too", "services", index, "prefix"
                )
        texts = c.texts(entry, "text", "services", index, language)
        opening, cap = _opening(c, entry, index)
        category = c.value(entry, "category", str, "services", index, default="") or None
        locations = _locations(c, entry, "services", index, language)
        services.append(
            ServiceConfig(service_id, prefix, names, texts, opening, cap, category, locations)
        )
    categories = _categories(c, data.get("categories", []), services, language)

    return KioskConfig(
        source=file,
        language=language,
        languages=tuple(languages),
        kiosk_mode=c.value(kiosk, "kiosk_mode", bool, "kiosk", default=False) or False,
        mode=c.value(kiosk, "mode", str, "kiosk", default="standalone", check=_one_of(MODES)),
        require_time_sync=c.value(kiosk, "require_time_sync", bool, "kiosk", default=True),
        return_home_s=float(
            c.value(kiosk, "return_home_s", (int, float), "kiosk", default=8, check=_positive)
        ),
        language_reset_s=float(
            c.value(kiosk, "language_reset_s", (int, float), "kiosk", default=30, check=_positive)
        ),
        warn_before_s=float(
            c.value(kiosk, "warn_before_s", (int, float), "kiosk", default=10, check=_positive)
        ),
        min_tap_interval_s=float(
            c.value(
                kiosk, "min_tap_interval_s", (int, float), "kiosk", default=1.5, check=_positive
            )
        ),
        max_tickets_per_minute=c.value(
            kiosk, "max_tickets_per_minute", int, "kiosk", default=12, check=_positive
        ),
        branch={
            "name": c.value(branch, "name", str, "branch", default="", check=_short_text) or "",
            "timezone": c.value(branch, "timezone", str, "branch", default="UTC", check=_timezone),
        },
        ticket={
            "url_template": c.value(
                ticket,
                "url_template",
                str,
                "ticket",
                default="http://127.0.0.1:8000/t/{token}",
                check=_url_template,
            ),
            # printed texts: one for every language, or a table per language
            "header": c.texts(ticket, "header", "ticket", None, language),
            "footer": c.texts(ticket, "footer", "ticket", None, language),
            "logo": str(logo_path) if logo else "",
        },
        printer=dict(printer) | {"backend": backend},
        services=tuple(services),
        categories=categories,
        admin=_admin(c, data.get("admin", {})),
        speech=_speech(c, data.get("speech", {}), base_dir),
    )


def _locations(
    c: _Checker, entry: Mapping, table: str, index: int, language: str
) -> dict[str, str]:
    """Where to go (a room, a floor): a text, or one per language; one line each."""
    found = c.texts(entry, "location", table, index, language)
    for code, text in found.items():
        if len(text) > MAX_LOCATION:
            c.fail(
                f"'location'.{code} is {len(text)} characters; the limit is {MAX_LOCATION}",
                table,
                index,
                "location",
            )
        if not text.isprintable():
            c.fail(f"'location'.{code} must be one line, without control characters", table, index)
    return {code: " ".join(text.split()) for code, text in found.items() if text.strip()}


def _categories(
    c: _Checker, data: object, services: list[ServiceConfig], language: str
) -> tuple[CategoryConfig, ...]:
    """The [[categories]] tables, checked as a tree with the services put in them."""
    if not isinstance(data, list) or len(data) > tree.MAX_CATEGORIES:
        c.fail(
            f"'categories' must be up to {tree.MAX_CATEGORIES} [[categories]] tables",
            None,
            None,
            "categories",
        )
    categories: list[CategoryConfig] = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            c.fail(f"[[categories]] #{index + 1} must be a table", "categories", index)
        c.known_keys(entry, {"id", "name", "position", "parent"}, "categories", index)
        category_id = c.value(
            entry,
            "id",
            str,
            "categories",
            index,
            check=lambda v: (
                None if _ID.fullmatch(v) else "must be lower-case letters, digits, - or _"
            ),
        )
        if any(earlier.id == category_id for earlier in categories):
            c.fail(f"category id {category_id!r} is used twice", "categories", index, "id")
        names = c.texts(entry, "name", "categories", index, language)
        if not names or not any(n.strip() for n in names.values()):
            c.fail(f"[[categories]] #{index + 1} needs a 'name'", "categories", index)
        position = c.value(
            entry,
            "position",
            int,
            "categories",
            index,
            default=0,
            check=lambda v: None if 0 <= v <= 999 else "must be from 0 to 999",
        )
        parent = c.value(entry, "parent", str, "categories", index, default="") or None
        if parent == category_id:
            c.fail(f"category {category_id!r} cannot be its own parent", "categories", index)
        categories.append(CategoryConfig(category_id, names, position or 0, parent))
    known = {category.id for category in categories}
    for index, service in enumerate(services):
        if service.category is not None and service.category not in known:
            hint = difflib.get_close_matches(service.category, sorted(known), n=1)
            c.fail(
                f"service {service.id!r} is in category {service.category!r}, which no "
                "[[categories]] table defines" + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                "services",
                index,
                "category",
            )
    try:
        tree.check(
            {category.id: category.parent for category in categories},
            [service.category for service in services],
        )
    except tree.TreeError as exc:
        culprit = next(
            (i for i, category in enumerate(categories) if repr(category.id) in str(exc)), None
        )
        c.fail(str(exc), "categories", culprit)
    return tuple(categories)


def _admin(c: _Checker, admin: Mapping) -> AdminConfig:
    c.known_keys(
        admin, {"pin_hash", "reboot_command", "poweroff_command", "idle_s", "hold_s"}, "admin"
    )
    pin_hash = c.value(
        admin,
        "pin_hash",
        str,
        "admin",
        default="",
        check=lambda v: (
            None
            if v == "" or (v.startswith("$argon2") and len(v) < 200)
            else "must come from `vuoro-kiosk --hash-pin` (an argon2 hash), or be empty"
        ),
    )
    commands = {}
    for key in ("reboot_command", "poweroff_command"):
        value = c.value(
            admin,
            key,
            list,
            "admin",
            default=list(getattr(AdminConfig, key)),
            check=lambda v: (
                None
                if 1 <= len(v) <= 20 and all(isinstance(a, str) and a for a in v)
                else 'must be a command as a list of words, like ["systemctl", "reboot"]'
            ),
        )
        commands[key] = tuple(value)
    return AdminConfig(
        pin_hash=pin_hash or "",
        idle_s=float(c.value(admin, "idle_s", (int, float), "admin", default=60, check=_positive)),
        hold_s=float(c.value(admin, "hold_s", (int, float), "admin", default=3, check=_positive)),
        **commands,
    )


def _speech(c: _Checker, speech: Mapping, base_dir: Path) -> SpeechConfig:
    """The [speech] table: devices and voices are checked as names, never run as commands."""
    c.known_keys(
        speech,
        {
            "enabled",
            "always_on",
            "engine",
            "voices",
            "speaker_device",
            "headset_device",
            "headset",
            "volume",
            "words_per_minute",
        },
        "speech",
    )
    engine = c.value(
        speech, "engine", str, "speech", default="espeak", check=_one_of(SPEECH_ENGINES)
    )

    def device(value: object) -> str | None:
        if value == "" or _ALSA_DEVICE.fullmatch(str(value)):
            return None
        return 'must be an ALSA device name, like "default" or "plughw:CARD=Headphones,DEV=0"'

    voices = c.value(speech, "voices", dict, "speech", default={})
    checked: dict[str, str] = {}
    for language, voice in voices.items():
        if language not in LANGUAGES:
            c.fail(
                f"'voices' has unknown language {language!r}; use one of {', '.join(LANGUAGES)}",
                "speech",
                None,
                "voices",
            )
        if not isinstance(voice, str) or not voice:
            c.fail(f"'voices'.{language} must be text", "speech", None, "voices")
        if engine == "espeak":
            if not _ESPEAK_VOICE.fullmatch(voice):
                c.fail(
                    f"'voices'.{language} must be an espeak-ng voice name like \"fi\" or "
                    f'"en-gb+f3" (`espeak-ng --voices` lists them), got {voice[:60]!r}',
                    "speech",
                    None,
                    "voices",
                )
            checked[language] = voice
        else:
            model = (base_dir / voice).resolve()
            if model.suffix != ".onnx" or not model.is_file():
                c.fail(
                    f"'voices'.{language} must be a Piper voice's .onnx file; "
                    f"{str(model)[:200]!r} is not one",
                    "speech",
                    None,
                    "voices",
                )
            checked[language] = str(model)
    if engine == "piper" and not checked:
        c.fail("engine 'piper' needs 'voices': a .onnx model per language", "speech", None)
    return SpeechConfig(
        enabled=c.value(speech, "enabled", bool, "speech", default=False) or False,
        always_on=c.value(speech, "always_on", bool, "speech", default=False) or False,
        engine=engine,
        voices=checked,
        speaker_device=c.value(
            speech, "speaker_device", str, "speech", default="default", check=device
        )
        or "default",
        headset_device=c.value(speech, "headset_device", str, "speech", default="", check=device)
        or "",
        headset=c.value(
            speech, "headset", str, "speech", default="auto", check=_one_of(HEADSET_SOURCES)
        ),
        volume=c.value(
            speech,
            "volume",
            int,
            "speech",
            default=7,
            check=lambda v: None if 1 <= v <= 10 else "must be 1 to 10",
        ),
        words_per_minute=c.value(
            speech,
            "words_per_minute",
            int,
            "speech",
            default=150,
            check=lambda v: None if 80 <= v <= 450 else "must be 80 to 450",
        ),
    )


def _opening(c: _Checker, entry: Mapping, index: int) -> tuple[dict, int | None]:
    """A service's opening hours, exceptions, last-ticket time and daily cap."""
    checks = {
        "hours": schedule.normalise_hours,
        "exceptions": schedule.normalise_exceptions,
        "last_ticket": schedule.check_last_ticket,
        "daily_cap": schedule.check_daily_cap,
    }
    found = {}
    for key, check in checks.items():
        try:
            found[key] = check(entry.get(key, 0 if key == "last_ticket" else None), key)
        except schedule.ScheduleError as exc:
            c.fail(str(exc), "services", index, key)
    opening = schedule.Schedule(found["hours"], found["exceptions"], found["last_ticket"])
    return opening.to_json(), found["daily_cap"]


def load(path: str | Path | None) -> KioskConfig:
    """The config at ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        return parse(embedded_default_text(), "<embedded default kiosk.toml>")
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(str(path), line, "is not UTF-8 text") from None
    return parse(text, str(path), path.parent)
