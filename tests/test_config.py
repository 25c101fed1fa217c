"""Config mistakes are named by file and line; what can be shown safely is kept."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from kiosk import config
from tests.conftest import TWO_SERVICES


def error_for(text: str) -> config.ConfigError:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(textwrap.dedent(text), "kiosk.toml")
    return caught.value


def test_the_embedded_default_is_a_valid_standalone_config():
    settings = config.load(None)
    assert [s.prefix for s in settings.services] == ["A", "B", "C"]
    assert settings.printer["backend"] == "emulator"
    assert settings.ticket["url_template"].count("{token}") == 1


def test_an_unknown_key_is_named_with_its_line_and_a_suggestion():
    error = error_for(TWO_SERVICES.replace('prefix = "B"', 'prefix = "B"\nnmae = "typo"'))
    lines = textwrap.dedent(TWO_SERVICES).splitlines()
    expected_line = lines.index('prefix = "B"') + 2
    assert (error.file, error.line) == ("kiosk.toml", expected_line)
    assert str(error) == (
        f"kiosk.toml:{expected_line}: unknown key 'nmae' in [[services]] #2 (did you mean 'name'?)"
    )


def test_an_unknown_section_is_named():
    error = error_for(TWO_SERVICES + "\n[printr]\nbackend = 'usb'\n")
    assert "unknown key 'printr'" in str(error) and "did you mean 'printer'" in str(error)
    assert error.line == len(textwrap.dedent(TWO_SERVICES).splitlines()) + 2


def test_a_missing_service_list_says_what_to_add():
    error = error_for("[kiosk]\nlanguage = 'fi'\n")
    assert str(error).startswith("kiosk.toml: no services: add at least one [[services]]")


def test_broken_toml_points_at_the_line():
    error = error_for('[kiosk]\nlanguage = "fi\n')
    assert error.line == 2 and "not valid TOML" in str(error)


def test_a_300_character_name_and_emoji_are_accepted_for_safe_rendering():
    long_name = "Rakennusvalvonta " * 18
    text = TWO_SERVICES.replace('{ fi = "Luvat ja lisenssit", en = "Permits" }', f'"{long_name}"')
    text = text.replace('{ fi = "Maksut", sv = "Betalningar", en = "Payments" }', '"Maksut 💶✨"')
    settings = config.parse(text)
    assert len(settings.services[1].names["fi"]) == len(long_name) > 300
    assert settings.services[0].names == {"fi": "Maksut 💶✨"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('prefix = "A"', 'prefix = "a1"'),
            "'prefix' in [[services]] #1 must be 1 to 3 letters A-Z",
        ),
        (('prefix = "A"', 'prefix = "\\u001b@"'), "must be 1 to 3 letters A-Z"),
        (('prefix = "B"', 'prefix = "A"'), "prefix 'A' is used by 'payments' too"),
        (('id = "permits"', 'id = "payments"'), "service id 'payments' is used twice"),
        (('id = "permits"', 'id = "Permits Desk"'), "must be lower-case letters"),
        (('timezone = "Europe/Helsinki"', 'timezone = "Mars/Olympus"'), "not a known time zone"),
        (
            ('timezone = "Europe/Helsinki"', 'timezone = "../../etc/passwd"'),
            "not a known time zone",
        ),
        (('language = "fi"', 'language = "klingon"'), "must be one of en, fi, sv, et"),
        (("return_home_s = 2", 'return_home_s = "soon"'), "'return_home_s' in [kiosk] must be int"),
        (("return_home_s = 2", "return_home_s = -1"), "must be more than 0"),
        (("return_home_s = 2", "return_home_s = true"), "must be int or float"),
        (
            ('backend = "emulator"', 'backend = "lp"'),
            "must be one of emulator, file, network, serial, usb",
        ),
        (('backend = "emulator"', 'backend = "network"'), "[printer] needs 'host'"),
        (('backend = "emulator"', 'backend = "emulator"\nhost = "x"'), "unknown key 'host'"),
        (("https://jono.example.fi/t/{token}", "javascript:alert(1)"), "must be an http(s) URL"),
        (("https://jono.example.fi/t/{token}", "https://jono.example.fi/"), "containing {token}"),
        (('en = "Permits"', 'xx = "Permits"'), "unknown language 'xx'"),
        (('language = "fi"', 'language = "fi"\nlanguages = ["fi", "xx"]'), "must list languages"),
        (('language = "fi"', 'language = "fi"\nlanguages = ["fi", "fi"]'), "each once"),
        (('language = "fi"', 'language = "fi"\nlanguages = "fi"'), "must be list"),
        (('en = "Permits"', f'en = "{"x" * 501}"'), "the limit is 500"),
        (('footer = "Kiitos', "footer = 42 #"), "'footer' in [ticket] must be text or table"),
        (('footer = "Kiitos', 'footer = { xx = "Hi" } #'), "'footer' has unknown language 'xx'"),
        (('footer = "Kiitos', "footer = { fi = 3 } #"), "'footer'.fi must be text"),
        (('footer = "Kiitos', 'header = { sv = { a = "b" } }\nfooter = "'), "'header'.sv must"),
        (('footer = "Kiitos', f'footer = {{ et = "{"õ" * 501}" }} #'), "the limit is 500"),
    ],
)
def test_impossible_values_get_a_clear_located_error(change, message):
    old, new = change
    assert old in TWO_SERVICES
    error = error_for(TWO_SERVICES.replace(old, new, 1))
    assert message in str(error)
    assert error.line is not None and error.line > 0


def test_a_footer_mistake_names_the_footer_line():
    footer = 'footer = { fi = "Kiitos", xx = "Aitäh" }'
    text = TWO_SERVICES.replace('footer = "Kiitos käynnistä – Tack – Aitäh: õ š ž"', footer)
    error = error_for(text)
    line = textwrap.dedent(text).splitlines().index(footer)
    assert str(error) == (
        f"kiosk.toml:{line + 1}: 'footer' has unknown language 'xx'; use one of en, fi, sv, et"
    )


def test_a_footer_per_language_keeps_unicode_and_a_text_is_the_default_language():
    settings = config.parse(
        TWO_SERVICES.replace(
            'footer = "Kiitos käynnistä – Tack – Aitäh: õ š ž"',
            'footer = { fi = "Kiitos 🙂", et = "Täname külastuse eest", sv = "" }',
        )
    )
    assert settings.ticket["footer"] == {
        "fi": "Kiitos 🙂",
        "et": "Täname külastuse eest",
        "sv": "",
    }
    assert config.parse(TWO_SERVICES).ticket["footer"] == {
        "fi": "Kiitos käynnistä – Tack – Aitäh: õ š ž"
    }
    assert config.parse(TWO_SERVICES).ticket["header"] == {}


def test_the_default_language_is_always_offered():
    settings = config.parse(
        TWO_SERVICES.replace('language = "fi"', 'language = "fi"\nlanguages = ["sv", "en"]')
    )
    assert settings.languages == ("fi", "sv", "en")
    assert config.parse(TWO_SERVICES).languages == ("fi",)


def test_a_file_that_is_not_utf8_is_refused_with_its_line(tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_bytes(b'[branch]\nname = "\xe4\xe4nekoski"\n')
    with pytest.raises(config.ConfigError, match=r"kiosk.toml:2: is not UTF-8 text"):
        config.load(path)


def test_an_unreadable_path_is_named(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.toml")


def run_kiosk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_the_kiosk_refuses_a_bad_config_with_one_line_and_no_traceback(write_config):
    path = write_config(TWO_SERVICES.replace("[ticket]", "[ticket]\ncolour = 'red'"))
    result = run_kiosk("--config", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"vuoro-kiosk: {path}:")
    assert "unknown key 'colour' in [ticket]" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_reports_a_good_file(write_config):
    result = run_kiosk("--check-config", "--config", str(write_config()))
    assert result.returncode == 0
    assert result.stdout.strip().endswith("ok, 2 services, printer emulator")
