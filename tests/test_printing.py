"""The paper ticket: bytes a printer gets, decoded back by the emulator."""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image

from printer.escpos_lib import escpos, profile_codepages, profile_media_width
from printer.layout import TicketContent, printable, render_ticket
from printer.render import EscPosRenderer, render_bytes

URL = "https://jono.example.fi/t/AAAAAAAAAAAAAAAAAAAAAA"


def content(**changes) -> TicketContent:
    fields = dict(
        branch="Kaupungin palvelupiste",
        number="A042",
        service="Maksut",
        issued="23.11.2026 klo 11.30",
        url=URL,
        service_text="Ota henkilöllisyystodistus esiin",
        footer="Kiitos käynnistä",
        scan_hint="Seuraa vuoroasi puhelimella",
    )
    return TicketContent(**(fields | changes))


def paper(data: bytes, profile: str = "TM-T20II", *, cut: bool = True):
    pages = render_bytes(data, profile_media_width(profile), profile_codepages(profile))
    assert len(pages) == 1 and pages[0].cut == cut, "one ticket, cut if the printer can"
    return pages[0]


def qr_texts(image: Image.Image) -> list[str]:
    return [code.text for code in zxingcpp.read_barcodes(image)]


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("fi", "Hyvää päivää, jonotusnumero ÄÖÅ äöå"),
        ("sv", "Välkommen, köa här: Å Ä Ö å ä ö"),
        ("et", "Järjekord: Õ õ Š š Ž ž Ä ä Ö ö Ü ü"),
    ],
)
def test_nordic_and_baltic_letters_reach_the_paper_through_one_code_page(language, text):
    data = render_ticket(content(service_text=text))
    assert data.count(b"\x1bt") == 1, "one code page for the whole ticket"
    assert b"\x1bt\x10" in data, "WPC1252 (ESC t 16) has all of ä ö å õ š ž"
    assert text.encode("cp1252") in data
    assert text in paper(data).lines


@pytest.mark.parametrize(
    ("profile", "width", "columns"), [("TM-T20II", 576, 48), ("RP-F10-58mm", 432, 36)]
)
def test_80mm_and_58mm_tickets_fit_their_paper_and_stay_small(profile, width, columns):
    data = render_ticket(content(), profile)
    ticket = paper(data, profile)
    assert len(data) < 600, f"{len(data)} bytes"
    assert b"\x1d(k" in data, "native QR"
    assert ticket.image.width == width + 32  # the renderer's white margin
    assert qr_texts(ticket.image) == [URL]
    assert ticket.lines[:3] == ["Kaupungin palvelupiste", "Maksut", "A042"]
    assert all(len(line) <= columns for line in ticket.lines)
    assert ticket.qr_codes == [URL]


def test_a_profile_without_native_qr_gets_a_raster_qr_that_still_scans():
    data = render_ticket(content(), "ZJ-5870")
    assert b"\x1d(k" not in data and b"\x1dv0" in data
    ticket = paper(data, "ZJ-5870", cut=False)  # a tear-off printer: no cutter
    assert qr_texts(ticket.image) == [URL]
    assert ticket.qr_codes == [], "no native QR was sent"


def test_a_long_name_is_wrapped_and_cut_never_overflowing():
    ticket = paper(render_ticket(content(service="Rakennusvalvonta ja ympäristölupa " * 10)))
    service_lines = ticket.lines[1:4]
    assert all(len(line) <= 24 for line in service_lines), "double width: 24 columns"
    assert service_lines[-1].endswith("...")
    assert ticket.lines[4] == "A042"


def test_control_characters_in_names_cannot_inject_printer_commands():
    hostile = "Maksut\x1b@\x1dV\x00\x1bd\x7f\x10\x04\x01 loppu"
    data = render_ticket(content(service=hostile, branch="\x1dV\x41\x05 Konttori"))
    assert data.count(b"\x1dV") == 1 and data.count(b"\x1b@") == 1, "only our own cut and init"
    assert b"\x10\x04" not in data
    assert paper(data).lines[:2] == ["VA Konttori", "Maksut@ Vd loppu"]


def test_emoji_are_left_out_and_decomposed_letters_composed():
    assert printable("Lupa 🚗 ja 🛂\ufe0f passi 👍🏽") == "Lupa ja passi"
    assert printable("A\u0308a\u0308nekoski") == "Äänekoski"
    ticket = paper(render_ticket(content(service="Maksut 💶", footer="Hei 👋 Ääne\u0308")))
    assert "Maksut" in ticket.lines and "Hei Äänë" in ticket.lines


def test_the_renderer_reads_python_escpos_output_of_every_kind():
    p = escpos().Dummy(profile="TM-T20II")
    p.set(align="right", bold=True)
    p.textln("oikealla")
    p.set(align="left", bold=False, double_width=True, double_height=True)
    p.textln("ISO")
    logo = Image.new("1", (64, 32), 1)
    logo.paste(0, (0, 0, 32, 32))  # left half black
    p.image(logo, impl="bitImageRaster")
    p.image(logo, impl="bitImageColumn")
    p.cut()
    p.textln("second")
    p.cut()
    pages = render_bytes(p.output, 576, profile_codepages("TM-T20II"))
    assert [t.lines for t in pages] == [["oikealla", "ISO"], ["second"]]
    first = pages[0].image
    assert not pages[0].warnings
    # right aligned text ends at the right edge; the left one starts at the margin
    right_line = first.crop((16, 16, 16 + 576, 40)).getbbox()
    assert right_line and right_line[2] > 560
    # both images: a black 32-dot block at the left, white on the right
    dark_rows = [
        y
        for y in range(first.height)
        if first.getpixel((20, y)) == 0 and first.getpixel((100, y)) == 255
    ]
    assert len(dark_rows) >= 60


def test_bytes_split_anywhere_render_the_same_as_whole():
    data = render_ticket(content())
    whole = paper(data)
    renderer = EscPosRenderer(576, profile_codepages("TM-T20II"))
    tickets = []
    for i in range(0, len(data), 7):
        tickets += renderer.feed(data[i : i + 7])
    assert len(tickets) == 1
    assert tickets[0].lines == whole.lines
    assert tickets[0].image.tobytes() == whole.image.tobytes()


def test_garbage_and_truncated_streams_never_crash_the_renderer():
    import random

    rng = random.Random(7)
    data = render_ticket(content())
    for _ in range(200):
        noisy = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            noisy[rng.randrange(len(noisy))] = rng.randrange(256)
        render_bytes(bytes(noisy[: rng.randrange(len(noisy))]))
    pages = render_bytes(b"\x1b\xff\x1d\xfehello\n\x1d")
    assert pages[0].lines == ["hello"]
    assert any("unknown" in w for w in pages[0].warnings)


def test_a_rendered_png_carries_its_transcript(tmp_path):
    from printer.render import read_transcript

    ticket = paper(render_ticket(content()))
    ticket.save_png(tmp_path / "t.png")
    assert read_transcript(tmp_path / "t.png") == ticket.text
    assert Image.open(io.BytesIO((tmp_path / "t.png").read_bytes())).size == ticket.image.size
