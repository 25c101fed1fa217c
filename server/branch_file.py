"""Branch files: a branch and its services as TOML, for automation and backups.

``vuoro-server branch FILE`` reads one; ``vuoro-server branch --export ID``
writes what the management pages made, so a fleet's config can live in git.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tomli_w

from catalogue import LANGUAGES
from server.storage import Rejected
from server.storage.callbacks import DEFAULTS as CALLBACK_DEFAULTS
from server.storage.callbacks import check_settings as check_callbacks
from sync import schedule, tree

SERVICE_KEYS = {
    "id",
    "prefix",
    "name",
    "text",
    "priority",
    "hours",
    "exceptions",
    "last_ticket",
    "daily_cap",
    "open",
    "category",
    "location",
}
CATEGORY_KEYS = {"id", "name", "position", "parent"}
COUNTER_KEYS = {"id", "location"}
BRANCH_KEYS = {"id", "name", "timezone", "languages", "ticket_url_template", "remote_join"}
ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")  # \Z: "$" would pass "id\n"
PREFIX = re.compile(r"^[A-Z]{1,3}\Z")
MAX_TEXT = 500
MAX_SERVICES = 40
MAX_COUNTERS = 100
MAX_LOCATION = 120  # a line on the ticket, the display and the phone


def load(path: Path) -> tuple[dict, list[dict]]:
    """The branch and its services from a TOML file, checked; Rejected says what is wrong."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise Rejected(f"{path}: {exc}") from None
    return parse(data, str(path))


def parse(data: dict, where: str = "branch file") -> tuple[dict, list[dict]]:
    branch = data.get("branch")
    if not isinstance(branch, dict):
        raise Rejected(f"{where}: needs a [branch] table")
    _known(branch, BRANCH_KEYS, f"{where}: [branch]")
    checked_branch = check_branch(branch, f"{where}: [branch]")
    entries = data.get("services")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_SERVICES:
        raise Rejected(f"{where}: needs 1 to {MAX_SERVICES} [[services]] tables")
    services = []
    for index, entry in enumerate(entries, start=1):
        label = f"{where}: [[services]] #{index}"
        if not isinstance(entry, dict):
            raise Rejected(f"{label}: not a table")
        _known(entry, SERVICE_KEYS, label)
        services.append(check_service(entry, label))
    for kind in ("id", "prefix"):
        seen = [s[kind] for s in services]
        twice = {v for v in seen if seen.count(v) > 1}
        if twice:
            raise Rejected(f"{where}: service {kind} {sorted(twice)[0]!r} is used twice")
    categories = _tables(data, "categories", tree.MAX_CATEGORIES, where)
    checked_branch["categories"] = [
        check_category(entry, f"{where}: [[categories]] #{index}")
        for index, entry in enumerate(categories, start=1)
    ]
    check_tree(checked_branch["categories"], services, where)
    counters = {}
    for index, entry in enumerate(_tables(data, "counters", MAX_COUNTERS, where), start=1):
        counter, locations = check_counter(entry, f"{where}: [[counters]] #{index}")
        if counter in counters:
            raise Rejected(f"{where}: counter {counter!r} is given twice")
        counters[counter] = locations
    checked_branch["counters"] = counters
    # "call me back" (README): on with these defaults where the file says nothing
    checked_branch["callbacks"] = check_callbacks(data.get("callbacks"), f"{where}: [callbacks]")
    return checked_branch, services


def _tables(data: dict, key: str, most: int, where: str) -> list[dict]:
    entries = data.get(key, [])
    if not isinstance(entries, list) or len(entries) > most:
        raise Rejected(f"{where}: {key} must be up to {most} [[{key}]] tables")
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise Rejected(f"{where}: [[{key}]] #{index}: not a table")
    return entries


def check_tree(categories: list[dict], services: list[dict], where: str = "branch") -> None:
    """Rejected unless the categories and the services' places in them make a
    tree a kiosk can show (sync.tree: known, no circles, a few levels). A
    category with no service yet is kept (kiosks do not show it), so what the
    management page made always exports and loads again."""
    ids = [c["id"] for c in categories]
    twice = {i for i in ids if ids.count(i) > 1}
    if twice:
        raise Rejected(f"{where}: category id {sorted(twice)[0]!r} is used twice")
    try:
        tree.check(
            {c["id"]: c["parent"] for c in categories},
            [s.get("category") for s in services],
            allow_empty=True,
        )
    except tree.TreeError as exc:
        raise Rejected(f"{where}: {exc}") from None


def check_category(entry: dict, label: str = "category") -> dict:
    """One category as storage keeps it; Rejected names the field."""
    _known(entry, CATEGORY_KEYS, label)
    category_id = entry.get("id")
    if not isinstance(category_id, str) or not ID.match(category_id):
        raise Rejected(f"{label}: id must be lower-case letters, digits, - or _ (at most 64)")
    names = _texts(entry.get("name"), f"{label}: name")
    if not any(names.values()):
        raise Rejected(f"{label}: needs a name")
    position = entry.get("position", 0)
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position <= 999:
        raise Rejected(f"{label}: position must be a whole number from 0 to 999")
    parent = entry.get("parent") or None
    if parent is not None and (not isinstance(parent, str) or not ID.match(parent)):
        raise Rejected(f"{label}: parent must be a category id")
    if parent == category_id:
        raise Rejected(f"{label}: a category cannot be its own parent")
    return {"id": category_id, "names": names, "position": position, "parent": parent}


def check_counter(entry: dict, label: str = "counter") -> tuple[str, dict[str, str]]:
    """A counter's name and where it is, per language."""
    _known(entry, COUNTER_KEYS, label)
    counter = entry.get("id")
    if isinstance(counter, int) and not isinstance(counter, bool):
        counter = str(counter)
    if not isinstance(counter, str):
        raise Rejected(f'{label}: id must be the counter\'s name, e.g. "3"')
    counter = " ".join(counter.split())
    if not counter or len(counter) > 20 or not counter.isprintable():
        raise Rejected(f"{label}: a counter is named by 1 to 20 printable characters")
    return counter, locations(entry.get("location"), f"{label}: location")


def locations(value: object, label: str) -> dict[str, str]:
    """Where to go (a room, a floor) per language: one line each, no control characters."""
    texts = {k: " ".join(v.split()) for k, v in _texts(value, label).items()}
    for language, text in texts.items():
        if len(text) > MAX_LOCATION:
            raise Rejected(f"{label}.{language}: at most {MAX_LOCATION} characters")
        if not text.isprintable():
            raise Rejected(f"{label}.{language}: no control characters")
    return {k: v for k, v in texts.items() if v}


def _known(table: dict, allowed: set[str], label: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise Rejected(f"{label}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def _text(value: object, label: str, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise Rejected(f"{label}: needs a text")
    if len(value) > MAX_TEXT:
        raise Rejected(f"{label}: at most {MAX_TEXT} characters")
    return value.strip()


def _texts(value: object, label: str) -> dict[str, str]:
    """A text, or a table of texts per language."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = {"en": value}
    if not isinstance(value, dict):
        raise Rejected(f"{label}: a text or a table of texts per language")
    for language in value:
        if language not in LANGUAGES:
            raise Rejected(f"{label}: unknown language {language!r} ({', '.join(LANGUAGES)})")
    return {k: _text(v, f"{label}.{k}", required=False) for k, v in value.items()}


def check_branch(branch: dict, label: str = "branch") -> dict:
    branch_id = branch.get("id")
    if not isinstance(branch_id, str) or not ID.match(branch_id):
        raise Rejected(f"{label}: id must be lower-case letters, digits, - or _")
    zone = branch.get("timezone", "UTC")
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise Rejected(f"{label}: unknown timezone {zone!r}") from None
    languages = branch.get("languages", ["en"])
    if (
        not isinstance(languages, list)
        or not languages
        or any(lang not in LANGUAGES for lang in languages)
    ):
        raise Rejected(f"{label}: languages must be a list from {', '.join(LANGUAGES)}")
    template = branch.get("ticket_url_template", "")
    if not isinstance(template, str) or "{token}" not in template:
        raise Rejected(f"{label}: ticket_url_template must contain {{token}}")
    if not template.startswith(("https://", "http://")):
        raise Rejected(f"{label}: ticket_url_template must be an http(s) address")
    remote_join = branch.get("remote_join", False)
    if not isinstance(remote_join, bool):
        raise Rejected(f"{label}: remote_join must be true or false")
    return {
        "id": branch_id,
        "name": _text(branch.get("name"), f"{label}: name"),
        "remote_join": remote_join,
        "timezone": str(zone),
        "languages": list(dict.fromkeys(languages)),
        "ticket_url_template": _text(template, f"{label}: ticket_url_template"),
    }


def check_service(entry: dict, label: str = "service") -> dict:
    """One service as put_branch stores it; Rejected names the field."""
    service_id = entry.get("id")
    if not isinstance(service_id, str) or not ID.match(service_id):
        raise Rejected(f"{label}: id must be lower-case letters, digits, - or _ (at most 64)")
    prefix = entry.get("prefix")
    if not isinstance(prefix, str) or not PREFIX.match(prefix):
        raise Rejected(f"{label}: prefix must be 1 to 3 letters A-Z")
    names = _texts(entry.get("name"), f"{label}: name")
    if not any(names.values()):
        raise Rejected(f"{label}: needs a name")
    priority = entry.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or not -9 <= priority <= 9:
        raise Rejected(f"{label}: priority must be a whole number from -9 to 9")
    is_open = entry.get("open", True)
    if not isinstance(is_open, bool):
        raise Rejected(f"{label}: open must be true or false")
    try:
        opening = schedule.Schedule(
            schedule.normalise_hours(entry.get("hours")),
            schedule.normalise_exceptions(entry.get("exceptions")),
            schedule.check_last_ticket(entry.get("last_ticket", 0)),
        )
        cap = schedule.check_daily_cap(entry.get("daily_cap"))
    except schedule.ScheduleError as exc:
        raise Rejected(f"{label}: {exc}") from None
    category = entry.get("category") or None
    if category is not None and (not isinstance(category, str) or not ID.match(category)):
        raise Rejected(f"{label}: category must be a category id")
    return {
        "id": service_id,
        "prefix": prefix,
        "category": category,
        "locations": locations(entry.get("location"), f"{label}: location"),
        "names": names,
        "texts": _texts(entry.get("text"), f"{label}: text"),
        "priority": priority,
        "is_open": is_open,
        "schedule": opening.to_json(),
        "daily_cap": cap,
    }


def dump(branch: dict, services: list[dict]) -> str:
    """TOML that :func:`load` reads back to the same branch."""
    branch = dict(branch)
    if not branch.get("remote_join"):  # off, as a file without the key says
        branch.pop("remote_join", None)
    categories = branch.pop("categories", [])
    counters = branch.pop("counters", {})
    callbacks = branch.pop("callbacks", None) or {}
    out_services = []
    for s in services:
        entry = {"id": s["id"], "prefix": s["prefix"], "name": s["names"]}
        if s.get("texts"):
            entry["text"] = s["texts"]
        if s.get("category"):
            entry["category"] = s["category"]
        if s.get("locations"):
            entry["location"] = s["locations"]
        if s.get("priority"):
            entry["priority"] = s["priority"]
        if not s.get("is_open", True):
            entry["open"] = False
        opening = s.get("schedule") or {}
        if opening.get("hours") is not None:
            entry["hours"] = opening["hours"]
        if opening.get("exceptions"):
            entry["exceptions"] = opening["exceptions"]
        if opening.get("last_ticket_min"):
            entry["last_ticket"] = opening["last_ticket_min"]
        if s.get("daily_cap") is not None:
            entry["daily_cap"] = s["daily_cap"]
        out_services.append(entry)
    document: dict = {"branch": branch, "services": out_services}
    if categories:
        document["categories"] = [
            {"id": c["id"], "name": c["names"], "position": c["position"]}
            | ({"parent": c["parent"]} if c.get("parent") else {})
            for c in categories
        ]
    if counters:
        document["counters"] = [
            {"id": counter, "location": texts} for counter, texts in counters.items()
        ]
    changed = {k: v for k, v in callbacks.items() if CALLBACK_DEFAULTS.get(k) != v}
    if changed:
        document["callbacks"] = changed
    return tomli_w.dumps(document)
