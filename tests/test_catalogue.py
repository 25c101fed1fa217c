"""The one translation catalogue: complete in every built-in language, current
with the sources (every kiosk screen, the staff's too), falling back to the
default language and never to a key."""

from __future__ import annotations

import ast
import io
import re
import shutil
import string
import tokenize
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from jinja2 import Environment

import catalogue
from catalogue import LANGUAGES, compile_po, is_current, mo_path, po_path, translator
from catalogue.extract import kv_as_python
from kiosk import i18n as kiosk_i18n
from server import i18n as server_i18n

ROOT = Path(__file__).resolve().parent.parent

#: Where the kiosk's phrases are set: a literal there must go through tr(). The
#: staff's admin menu and PIN pad too: they speak the kiosk's own language.
PHRASE_MODULES = ("app.py", "home.py", "ticket.py", "issuing.py", "paper.py", "admin.py", "pin.py")
#: The pages customers and waiting rooms see; the console's and the display's
#: pairing page are for staff and technicians, in English.
PUBLIC_TEMPLATES = (
    "base.html",
    "ticket.html",
    "message.html",
    "display.html",
    "join.html",
    "join_poster.html",
)
#: What a phrase-bearing module shows or prints.
SHOWN_ATTRIBUTES = {
    "prompt",
    "notice",
    "status",
    "scan_hint",
    "done_label",
    "detail",
    "text",
    "message",
    "question",
    "yes",
}
#: Calls whose arguments a screen shows (the admin menu's message, the PIN pad's,
#: a confirmation's question and answer).
SHOWN_CALLS = {"show_problem", "TicketContent", "show_menu", "reset", "_confirm", "ConfirmView"}


def _po(language: str):
    with po_path(language).open("rb") as f:
        return read_po(f, locale=language, domain=catalogue.DOMAIN)


def _key(message) -> tuple:
    return (message.context, message.id)


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _extracted() -> set[tuple]:
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    found = set()
    for _file, _line, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=catalogue.KEYWORDS
    ):
        found.add((context, message if isinstance(message, str) else tuple(message)))
    return found


def test_every_message_has_a_translation_in_every_language_with_the_same_placeholders():
    template = _po_template()
    for language in LANGUAGES:
        po = {_key(m): m for m in _po(language) if m.id}
        assert set(po) == {_key(m) for m in template if m.id}, language
        for message in po.values():
            assert not message.fuzzy, (language, message.id)
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(s.strip() for s in strings), (language, message.id)
            for text in strings:
                assert _placeholders(text) == _placeholders(ids[0]), (language, message.id)


def _po_template():
    with (catalogue.LOCALE_DIR / f"{catalogue.DOMAIN}.pot").open("rb") as f:
        return read_po(f)


def test_extraction_finds_no_message_outside_the_committed_catalogue():
    """``make i18n`` was run after the last phrase changed: the template and the PO
    files hold exactly what the kiosk (py + kv) and the server (py + templates) ask."""
    in_template = {
        (m.context, m.id if isinstance(m.id, str) else tuple(m.id)) for m in _po_template() if m.id
    }
    extracted = _extracted()
    assert extracted - in_template == set(), "new messages: run make i18n and translate them"
    assert in_template - extracted == set(), "messages no longer used: run make i18n"
    assert ("service", "Closed") in extracted  # contexts are seen
    assert ("admin", "Close") in extracted  # .kv files are read (admin.kv)
    assert (None, "Staff only: enter the admin PIN") in extracted  # pin.kv
    assert (None, ("{count} waiting", "{count} waiting")) in extracted  # plurals are seen


def test_the_kv_extractor_finds_messages_in_kivy_rules(tmp_path):
    kv = (
        "#:import tr kiosk.i18n.tr\n"
        "<Thing@Button>:\n"
        "    # Translators: the button that ends the visit\n"
        '    text: tr("Done", app.language)\n'
        "    BoxLayout:\n"
        '        on_release: print("not a message")\n'
    )
    assert kv_as_python(kv).count("\n") == kv.count("\n")  # lines stay where they were
    (tmp_path / "x.kv").write_text(kv)
    found = list(
        extract_from_dir(
            str(tmp_path),
            [("**.kv", "catalogue.extract:extract_kv")],
            {},
            keywords=catalogue.KEYWORDS,
            comment_tags=["Translators:"],
        )
    )
    assert [(line, message, comments) for _, line, message, comments, _ in found] == [
        (4, "Done", ["Translators: the button that ends the visit"])
    ]


def _literals_shown_in_kv(path: Path) -> list[str]:
    shown = []
    for number, line in enumerate(kv_as_python(path.read_text()).splitlines(), 1):
        raw = path.read_text().splitlines()[number - 1].strip()
        if not re.match(r"(text|hint_text|title)\s*:", raw):
            continue
        tokens = list(tokenize.generate_tokens(io.StringIO(line).readline))
        for index, token in enumerate(tokens):
            if token.type != tokenize.STRING or not re.search(r"[^\W\d_]", token.string):
                continue
            before = [t.string for t in tokens[:index]]
            if not any(k in before for k in catalogue.KEYWORDS):
                shown.append(f"{path.name}:{number}: {token.string}")
    return shown


def test_no_kiosk_screen_shows_a_literal_that_bypasses_the_catalogue(tmp_path):
    """Every .kv file, the staff's admin menu and PIN pad included (a new one is
    checked without being listed)."""
    screens = sorted((ROOT / "kiosk").glob("*.kv"))
    assert {"home.kv", "ticket.kv", "admin.kv", "pin.kv"} <= {path.name for path in screens}
    found = [hit for path in screens for hit in _literals_shown_in_kv(path)]
    assert found == []
    # the check itself sees a literal, and not one inside tr()
    rule = tmp_path / "x.kv"
    rule.write_text(
        '<Thing@Button>:\n    text: "Cancel"\n    Label:\n        text: tr("OK", root.language)\n'
    )
    assert _literals_shown_in_kv(rule) == ['x.kv:2: "Cancel"']


def _untranslated_literals(source: str, name: str) -> list[str]:
    """String literals with letters put on screen or paper without tr()."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        values = []
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr in SHOWN_ATTRIBUTES:
                    values.append(node.value)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in catalogue.KEYWORDS:
                continue
            if called in SHOWN_CALLS:
                values += node.args
            if called in {"TicketContent", "replace"}:  # dataclasses.replace(content, ...)
                values += [k.value for k in node.keywords if k.arg is not None]
        for value in values:
            bad += [
                f"{name}:{c.lineno}: {c.value!r}"
                for c in _constants_outside_tr(value)
                if re.search(r"[^\W\d_]", c.value)
            ]
    return bad


def _constants_outside_tr(node: ast.AST) -> list[ast.Constant]:
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") in catalogue.KEYWORDS:
        return []
    if isinstance(node, ast.Subscript):  # config["ticket"]["header"]: a key, not a text
        return _constants_outside_tr(node.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _constants_outside_tr(node.func.value)  # "…".replace(":", "."): its arguments

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    return [c for child in ast.iter_child_nodes(node) for c in _constants_outside_tr(child)]


def test_no_phrase_bearing_module_shows_a_literal_that_bypasses_the_catalogue():
    found = []
    for name in PHRASE_MODULES:
        found += _untranslated_literals((ROOT / "kiosk" / name).read_text(), name)
    assert found == []
    # the check sees one
    assert _untranslated_literals('self.home.prompt = "Closed for lunch"', "x.py")
    assert not _untranslated_literals('self.home.prompt = tr("Closed", lang)', "x.py")
    assert _untranslated_literals('self.show_menu(f"Pairing with {code}")', "x.py")
    assert _untranslated_literals('self.app.pin.reset("Locked")', "x.py")


def test_every_language_speaks_its_own_words():
    assert kiosk_i18n.tr("Done", "fi") == "Valmis"
    assert kiosk_i18n.ntr("{count} waiting", "{count} waiting", 1, "sv") == "1 väntar"
    assert kiosk_i18n.ntr("{count} waiting", "{count} waiting", 7, "et") == "7 ootel"
    assert kiosk_i18n.closed_reason("later", "13:00", "fi") == "Avautuu klo 13.00"
    assert kiosk_i18n.closed_reason("closed", None, "et") == "Suletud"
    # the same English, told apart by context
    words = server_i18n.display_words(["fi"])["fi"]
    assert (words["earlier"], words["waiting"]) == ("Kutsutut", "odottaa")
    assert server_i18n.page_words("sv")["waiting"] == "Väntar"
    for language in LANGUAGES:
        page = server_i18n.page_words(language)
        assert all(page[s] for s in server_i18n.STATUS_WORDS)
    # the staff's screens: the same catalogue, with contexts and plurals
    assert kiosk_i18n.tr("Test print", "fi") == "Testitulostus"
    assert kiosk_i18n.ptr("admin", "Close", "sv") == "Stäng"
    assert kiosk_i18n.ptr("device state", "paper out", "et") == "paber otsas"
    wrong = ("Wrong PIN: {count} try left", "Wrong PIN: {count} tries left")
    assert kiosk_i18n.ntr(*wrong, 1, "fi") == "Väärä PIN: 1 yritys jäljellä"
    assert kiosk_i18n.ntr(*wrong, 4, "fi") == "Väärä PIN: 4 yritystä jäljellä"
    assert kiosk_i18n.ntr(*wrong, 1, "en") == "Wrong PIN: 1 try left"


@pytest.fixture
def thin_finnish(tmp_path, monkeypatch):
    """A copy of the catalogue whose Finnish lacks one message (and has another blank)."""
    copy = tmp_path / "locale"
    shutil.copytree(catalogue.LOCALE_DIR, copy, ignore=shutil.ignore_patterns("*.mo"))
    finnish = copy / "fi" / "LC_MESSAGES" / "vuoro.po"
    text = finnish.read_text()
    text = re.sub(r'msgid "Done"\nmsgstr "[^"]*"\n', "", text)
    text = text.replace('msgstr "Vuoronumerosi"', 'msgstr ""')
    text = text.replace('msgstr[0] "{count} jonossa"', 'msgstr[0] ""')
    finnish.write_text(text)
    monkeypatch.setattr(catalogue, "LOCALE_DIR", copy)
    catalogue.clear_cache()
    yield
    catalogue.clear_cache()


@pytest.mark.usefixtures("thin_finnish")
def test_a_missing_translation_falls_back_to_the_default_language_never_to_a_key():
    assert translator("fi", "sv").gettext("Done") == "Klar"  # the default: Swedish
    assert translator("fi", "sv").gettext("Your number") == "Ditt nummer"  # blank is missing
    assert translator("fi").gettext("Done") == "Done"  # no default: English
    assert translator("fi", "sv").gettext("Now calling") == "Vuorossa"  # the rest is Finnish
    plural = translator("fi", "sv").ngettext("{count} waiting", "{count} waiting", 1)
    assert plural == "{count} väntar"  # a blank plural form is missing too
    kiosk_i18n.set_default_language("et")
    try:
        assert kiosk_i18n.tr("Done", "fi") == "Valmis"  # Estonian's word, by chance Finnish's
        assert kiosk_i18n.tr("Your number", "fi") == "Teie number"
        assert server_i18n.page_words("fi", "et")["your_number"] == "Teie number"
    finally:
        kiosk_i18n.set_default_language("en")


@pytest.mark.parametrize(
    "hostile", ["xx", "../../etc", "fi/../../../etc/passwd", "", "ä" * 5000, "\x00fi", None, 42]
)
def test_an_unknown_or_hostile_language_gets_the_default_language(hostile):
    assert translator(hostile, "sv").gettext("Done") == "Klar"
    assert translator(hostile, hostile).gettext("Done") == "Done"
    assert server_i18n.page_words(hostile, "fi")["send"] == "Lähetä"  # type: ignore[arg-type]
    assert kiosk_i18n.tr("Printing your ticket…", hostile) == "Printing your ticket…"  # type: ignore[arg-type]


def test_a_region_code_finds_its_language():
    assert translator("fi-FI").gettext("Done") == "Valmis"
    assert translator("sv_SE").gettext("Done") == "Klar"


def test_a_stale_or_missing_mo_is_never_used(tmp_path, monkeypatch):
    """The .mo beside a PO is used only when compiled from that very PO; else the
    PO is compiled in memory, so an edited PO shows at once."""
    po = po_path("fi").read_bytes()
    mo = compile_po(po, "fi")
    assert is_current(mo, po)
    assert not is_current(mo, po.replace(b'msgstr "Valmis"', b'msgstr "Valmis!"'))
    assert not is_current(b"not a catalogue", po)
    copy = tmp_path / "locale"
    shutil.copytree(catalogue.LOCALE_DIR, copy, ignore=shutil.ignore_patterns("*.mo"))
    monkeypatch.setattr(catalogue, "LOCALE_DIR", copy)
    catalogue.clear_cache()
    try:
        assert catalogue.compile_all() == [mo_path(code) for code in LANGUAGES]
        assert catalogue.compile_all() == []  # current: left alone
        edited = po_path("fi")
        edited.write_bytes(edited.read_bytes().replace(b'msgstr "Valmis"', b'msgstr "Valmis!"'))
        catalogue.clear_cache()
        assert translator("fi").gettext("Done") == "Valmis!"  # the stale .mo is not read
    finally:
        catalogue.clear_cache()


def test_the_paper_still_prints_every_letter_of_the_four_languages():
    letters = "".join(
        m.string if isinstance(m.string, str) else "".join(m.string)
        for language in LANGUAGES
        for m in _po(language)
        if m.id
    )
    assert set("äöåõšü") & set(letters) >= set("äöåõ")


class _VisibleText(HTMLParser):
    """The text a person sees or hears of a page: its text and its labels."""

    LABELS = ("aria-label", "title", "alt", "placeholder")

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_data(self, data: str) -> None:
        self.found.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value or "" for name, value in attrs if name in self.LABELS]


def _literals_in_template(source: str) -> list[str]:
    parser = _VisibleText()
    parser.feed(re.sub(r"{{.*?}}|{%.*?%}|{#.*?#}", "", source, flags=re.S))
    return [
        text.strip()
        for text in parser.found
        if re.search(r"[^\W\d_]", text.replace("Vuoro", ""))  # the name is not translated
    ]


def test_no_public_page_shows_a_literal_that_bypasses_the_catalogue():
    templates = ROOT / "server" / "templates"
    found = {
        name: _literals_in_template((templates / name).read_text()) for name in PUBLIC_TEMPLATES
    }
    assert found == {name: [] for name in PUBLIC_TEMPLATES}
    assert _literals_in_template('<p aria-label="time">{{ tr("Time") }}</p>') == ["time"]


def test_a_template_says_its_words_in_the_page_language():
    env = Environment(autoescape=True)
    env.globals.update(server_i18n.TEMPLATE_GLOBALS)
    page = env.from_string('{{ tr("Time") }}|{{ ptr("display", "Called") }}')
    assert page.render(lang="fi") == "Kellonaika|Kutsutut"
    assert page.render(lang="../../etc", default_lang="sv") == "Klockslag|Uppropade"
    assert page.render() == "Time|Called"
