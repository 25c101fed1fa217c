"""The contrast check over the kiosk's screenshots (tests.screens): it catches
text a customer with poor eyesight cannot read (proven on drawn pictures of
known colours), and a small set of real screens passes it (the full set is
``make screenshots``)."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw, ImageFont

from tests import screens

SIZE = (400, 120)


def drawn(ink: tuple[int, int, int], ground: tuple[int, int, int], px: int = 20) -> Image.Image:
    image = Image.new("RGB", SIZE, ground)
    ImageDraw.Draw(image).text((20, 40), "Payments 123", fill=ink, font=ImageFont.load_default(px))
    return image


def answer(px: float = 20, bold: bool = False, layers=None) -> dict:
    """What the probe says of one label over the drawn text."""
    return {
        "texts": [
            {
                "text": "Payments 123",
                "layer": 0,
                "box": [10, 30, 380, 60],
                "glyphs": [15, 35, 370, 50],
                "color": [0, 0, 0, 1],
                "font_size": px,
                "bold": bold,
                "opacity": 1.0,
                "disabled": False,
            }
        ],
        "layers": layers or [[0, 0, *SIZE]],
    }


def test_grey_on_grey_fails_and_black_on_white_passes():
    (grey,) = screens.check(drawn((128, 128, 128), (160, 160, 160)), answer())
    assert not grey.passes and grey.ratio < 1.6, grey
    assert grey.background == (160, 160, 160) and grey.ink == (128, 128, 128)
    (black,) = screens.check(drawn((0, 0, 0), (255, 255, 255)), answer())
    assert black.passes and black.ratio == pytest.approx(21, abs=0.01)


def test_the_line_is_4_5_to_1_and_3_to_1_for_large_text():
    # #767676 on white is 4.54:1, #777777 4.48:1: just over and just under
    (over,) = screens.check(drawn((0x76,) * 3, (255, 255, 255)), answer())
    (under,) = screens.check(drawn((0x77,) * 3, (255, 255, 255)), answer())
    assert over.passes and not under.passes, (over, under)
    # 3.5:1 fails small text, passes 32 px or 24 px bold
    ink = (0x8A,) * 3  # 3.45:1 on white
    assert not screens.check(drawn(ink, (255,) * 3), answer(px=20))[0].passes
    assert not screens.check(drawn(ink, (255,) * 3), answer(px=24))[0].passes
    assert screens.check(drawn(ink, (255,) * 3, 32), answer(px=32))[0].passes
    assert screens.check(drawn(ink, (255,) * 3), answer(px=24, bold=True))[0].passes


def test_text_in_its_backgrounds_own_colour_measures_1_to_1():
    (invisible,) = screens.check(drawn((200, 30, 30), (200, 30, 30)), answer())
    assert invisible.ratio == 1.0 and not invisible.passes


def test_a_label_under_a_later_layer_or_off_screen_is_not_measured():
    band = [[0, 0, *SIZE], [0, 0, SIZE[0], 50]]  # a band over the label's top
    assert screens.check(drawn((128,) * 3, (160,) * 3), answer(layers=band)) == []
    hidden = answer()
    hidden["texts"][0]["opacity"] = 0.0
    assert screens.check(drawn((128,) * 3, (160,) * 3), hidden) == []
    away = answer()
    away["texts"][0]["box"] = [SIZE[0] + 5, 0, 100, 40]
    assert screens.check(drawn((128,) * 3, (160,) * 3), away) == []


def test_text_bigger_than_its_box_is_reported():
    big = answer()
    big["texts"][0]["glyphs"] = [15, 0, 370, 90]
    assert screens.overflowing(answer()) == []
    assert screens.overflowing(big) == ["'Payments 123' needs 370x90, has 380x60"]
    clipped = answer()  # a text_size the lines do not fit: the texture is the box
    clipped["texts"][0]["needs"] = [300, 120]
    assert screens.overflowing(clipped) == ["'Payments 123' needs 370x120, has 380x60"]
    short = answer()
    short["texts"][0]["shortened"] = True
    assert screens.overflowing(short) == ["'Payments 123' is cut short with '...' in 380x60"]


@pytest.mark.ui
def test_home_and_ticket_in_two_languages_and_every_mode_pass_the_contrast_check(tmp_path):
    """The real app at the Pi's 800x480: 2 screens x 2 languages x 4 modes."""
    shots = screens.take(tmp_path, screens=("home", "ticket-printed"), languages=("en", "fi"))
    assert len(shots) == 16
    for shot in shots:
        assert Image.open(shot.path).size == screens.PI_SCREEN
        assert len(shot.worst) >= 5, f"{shot.path.name}: too few labels measured"
    report = screens.report(shots)
    assert all(not shot.failures for shot in shots), report
    measured = {m.text for shot in shots for m in shot.worst}
    assert {"Payments", "Maksut", "Done", "Valmis", "Closed today"} <= measured, measured


@pytest.mark.ui
def test_the_print_failed_message_the_time_warning_and_the_names_fit_in_large_text(tmp_path):
    """What a customer must read when something goes wrong (or time runs out),
    and the names to choose from (a long Finnish one among them), are whole in
    large text, in every language: never cut off or shortened."""
    shots = screens.take(
        tmp_path,
        screens=("ticket-failed", "time-warning", "category"),
        languages=("en", "fi", "sv", "et"),
        modes=("large",),
    )
    assert len(shots) == 12
    overflowing = {shot.path.name: shot.overflows for shot in shots if shot.overflows}
    assert not overflowing, overflowing
