"""The admin PIN: hashing, checking hostile input, and the lock-out that grows
and survives a restart; the [admin] config section's refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kiosk import config
from kiosk.pinlock import FREE_TRIES, PinLock, hash_pin
from sync import state, tickets

PIN_HASH = hash_pin("482916")


@pytest.fixture
def db(tmp_path):
    database = state.connect(tmp_path / "state.db")
    yield database
    database.close()


@pytest.mark.parametrize("pin", ["", "123", "1" * 13, "12a4", "١٢٣٤", "12 34", "-1234", "1234\n"])
def test_a_pin_is_4_to_12_ascii_digits(pin):
    with pytest.raises(ValueError, match="4 to 12 digits"):
        hash_pin(pin)


@pytest.mark.parametrize(
    "attempt", ["", "482917", "4829160", "x" * 10_000, "'; DROP TABLE", "٤٨٢٩١٦"]
)
def test_wrong_and_hostile_pins_are_just_wrong(db, attempt):
    lock = PinLock(db, PIN_HASH)
    verdict = lock.check(attempt)
    assert not verdict.ok and verdict.tries_left == FREE_TRIES - 1


def test_the_lock_out_grows_and_survives_a_restart(db, monkeypatch):
    lock = PinLock(db, PIN_HASH)
    for _ in range(FREE_TRIES - 1):
        assert not lock.check("000000").locked_s
    assert 29 <= lock.check("000000").locked_s <= 30, "the fifth wrong PIN locks for 30 s"
    assert lock.check("482916").locked_s, "while locked even the right PIN is refused"
    restarted = PinLock(db, PIN_HASH)  # the app restarted (or was restarted on purpose)
    assert restarted.locked_s() > 0

    clock = tickets.now_utc()
    monkeypatch.setattr("kiosk.pinlock.now_utc", lambda: clock + timedelta(seconds=31))
    assert 59 <= restarted.check("000000").locked_s <= 60, "the next wrong one: 60 s"
    monkeypatch.setattr("kiosk.pinlock.now_utc", lambda: clock + timedelta(seconds=95))
    assert restarted.check("482916").ok
    assert restarted.check("000000").tries_left == FREE_TRIES - 1, "a right PIN resets the count"


def test_no_pin_hash_keeps_the_menu_shut(db):
    lock = PinLock(db, "")
    assert not lock.enabled and not lock.check("1234").ok


@pytest.mark.parametrize(
    ("admin", "message"),
    [
        ('pin_hash = "1234"', "vuoro-kiosk --hash-pin"),
        ('pin_hash = "$argon2id$' + "x" * 300 + '"', "vuoro-kiosk --hash-pin"),
        ('reboot_command = "systemctl reboot"', "reboot_command"),
        ('reboot_command = ["systemctl", ""]', "list of words"),
        ("poweroff_command = []", "list of words"),
        ("idle_s = 0", "more than 0"),
        ("hold_s = -3", "more than 0"),
        ("pin = 1234", "unknown key 'pin'"),
    ],
)
def test_bad_admin_settings_name_the_line(admin, message):
    text = f'[admin]\n{admin}\n\n[[services]]\nid = "a"\nprefix = "A"\nname = "A"\n'
    with pytest.raises(config.ConfigError, match=message) as error:
        config.parse(text, "kiosk.toml")
    assert "kiosk.toml:2" in str(error.value)


def test_the_embedded_default_has_a_demo_pin_and_stock_commands():
    admin = config.load(None).admin
    assert PinLock(None, admin.pin_hash).verify("1234")
    assert admin.reboot_command == ("systemctl", "reboot")
