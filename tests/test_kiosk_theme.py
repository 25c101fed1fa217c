"""The kiosk's palettes and time limits, without a window: every text colour the
customer screens use stands out 4.5:1 from its background in every mode, and a
time limit warns before it ends and starts over when extended."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from kiosk import config as kiosk_config
from kiosk.theme import (
    DEFAULT,
    HIGH_CONTRAST,
    PALETTES,
    TEXT_PAIRS,
    contrast_ratio,
    palette_names,
)
from kiosk.timelimit import TimeLimit, warn_lead

CUSTOMER_KV = ("home.kv", "ticket.kv", "pin.kv", "modes.kv")


@pytest.mark.parametrize("palette", sorted(PALETTES))
def test_every_text_pair_has_at_least_4_5_to_1_in_every_mode(palette):
    colours = PALETTES[palette]
    low = {
        f"{text} on {background} ({where})": round(
            contrast_ratio(getattr(colours, text), getattr(colours, background)), 2
        )
        for text, background, where in TEXT_PAIRS
    }
    assert {pair: ratio for pair, ratio in low.items() if ratio < 4.5} == {}


def test_high_contrast_is_light_on_black_and_more_contrasting_than_the_default():
    assert HIGH_CONTRAST.background[:3] == (0, 0, 0)
    for text, background, _where in TEXT_PAIRS:
        if text in ("prefix_text", "closed_prefix"):
            continue  # the letter's square is white in both
        assert contrast_ratio(
            getattr(HIGH_CONTRAST, text), getattr(HIGH_CONTRAST, background)
        ) >= min(7.0, contrast_ratio(getattr(DEFAULT, text), getattr(DEFAULT, background)))


def test_the_ratio_formula_matches_wcag_reference_values():
    assert contrast_ratio((0, 0, 0, 1), (1, 1, 1, 1)) == pytest.approx(21.0)
    assert contrast_ratio((1, 1, 1, 1), (1, 1, 1, 1)) == pytest.approx(1.0)
    # #767676 on white: the classic "just 4.5:1" grey
    grey = 0x76 / 255
    assert contrast_ratio((grey, grey, grey, 1), (1, 1, 1, 1)) == pytest.approx(4.54, abs=0.01)


def kv_text(name: str) -> str:
    return (resources.files("kiosk") / name).read_text(encoding="utf-8")


def test_every_text_colour_the_customer_screens_use_is_a_checked_pair():
    """A text colour added to a .kv file without a pair in TEXT_PAIRS fails here."""
    checked = {text for text, _background, _where in TEXT_PAIRS}
    used = set()
    for name in CUSTOMER_KV:
        for line in kv_text(name).splitlines():
            if re.match(r"\s*(color|disabled_color):", line):
                used |= set(re.findall(r"app\.theme\.colours\.(\w+)", line))
    assert used, "the .kv rules read the theme's colours"
    assert used - checked == set()
    assert used | checked <= set(palette_names())


def test_customer_screens_take_every_colour_from_the_theme():
    """No fixed colour constant left on a customer screen: each follows the mode."""
    for name in CUSTOMER_KV:
        assert not re.search(r"\btheme\.[A-Z_]+\b", kv_text(name)), name


def test_every_font_on_the_customer_screens_follows_large_text():
    for name in ("home.kv", "ticket.kv", "modes.kv"):
        for number, line in enumerate(kv_text(name).splitlines(), 1):
            if re.match(r"\s*font_size:", line):
                assert (
                    "text_scale" in line
                    or line.endswith("# fills its box")
                    or ("# fills its box:" in line)
                ), f"{name}:{number}: {line.strip()}"


class ManualClock:
    """Time that moves only when told: runs what falls due, in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.due: list[list] = []

    def schedule(self, callback, delay: float):
        entry = [self.now + delay, callback, True]

        class Handle:
            def cancel(self_inner) -> None:
                entry[2] = False

        self.due.append(entry)
        return Handle()

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            live = sorted((e for e in self.due if e[2] and e[0] <= end), key=lambda e: e[0])
            if not live:
                break
            entry = live[0]
            entry[2] = False
            self.now = entry[0]
            entry[1]()
        self.now = end


def limit_with_log(clock: ManualClock, warn_before_s: float = 10):
    events: list[tuple[float, str]] = []
    limit = TimeLimit(
        "ticket",
        lambda: events.append((clock.now, "expired")),
        schedule=clock.schedule,
        now=lambda: clock.now,
        warn_before_s=warn_before_s,
        on_warning=lambda lim: events.append((clock.now, f"warning {lim.remaining_s():.0f}")),
        on_quiet=lambda lim: events.append((clock.now, "quiet")),
    )
    return limit, events


def test_a_limit_warns_the_configured_time_before_it_ends():
    clock = ManualClock()
    limit, events = limit_with_log(clock)
    limit.start(60)
    clock.advance(49)
    assert events == [] and not limit.warning
    clock.advance(1)
    assert events == [(50, "warning 10")] and limit.warning
    clock.advance(10)
    assert events == [(50, "warning 10"), (60, "quiet"), (60, "expired")]
    assert not limit.running and not limit.warning


def test_a_short_limit_warns_a_third_of_its_time_before():
    assert warn_lead(8, 10) == pytest.approx(8 / 3)
    assert warn_lead(60, 10) == 10
    clock = ManualClock()
    limit, events = limit_with_log(clock)
    limit.start(6)
    clock.advance(6)
    assert events == [(4, "warning 2"), (6, "quiet"), (6, "expired")]


def test_extending_gives_the_full_time_again_as_often_as_asked():
    clock = ManualClock()
    limit, events = limit_with_log(clock)
    limit.start(30)
    for _ in range(3):
        clock.advance(25)  # warned at 20
        assert limit.warning
        assert limit.extend()
        assert not limit.warning and limit.remaining_s() == 30
    clock.advance(29.9)
    assert not any(what == "expired" for _t, what in events)
    clock.advance(0.1)
    assert events[-1] == (pytest.approx(105), "expired")
    assert [what for _t, what in events].count("warning 10") == 4


def test_a_cancelled_or_idle_limit_never_fires_and_cannot_be_extended():
    clock = ManualClock()
    limit, events = limit_with_log(clock)
    assert not limit.extend()
    limit.start(9)
    clock.advance(7)
    limit.cancel()
    clock.advance(100)
    assert events == [(6, "warning 3"), (7, "quiet")]
    assert not limit.extend()


def test_warn_before_s_is_read_and_checked():
    base = kiosk_config.embedded_default_text()
    assert kiosk_config.parse(base).warn_before_s == 10
    quick = base.replace("warn_before_s = 10", "warn_before_s = 2.5")
    assert kiosk_config.parse(quick).warn_before_s == 2.5
    for bad, message in (("0", "must be more than 0"), ('"soon"', "must be int or float")):
        with pytest.raises(kiosk_config.ConfigError, match=message):
            kiosk_config.parse(base.replace("warn_before_s = 10", f"warn_before_s = {bad}"))
