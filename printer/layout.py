"""The paper ticket as ESC/POS bytes: native text, one code page, native QR.

A ticket is a few hundred bytes, not a raster of the whole slip, so it prints
in a fraction of a second even over a 9600-baud serial line.
"""

from __future__ import annotations

import textwrap
import unicodedata
from dataclasses import dataclass
from datetime import datetime

import qrcode
from PIL import Image

from printer.escpos_lib import escpos, profile_media_width

DEFAULT_PROFILE = "TM-T20II"
FONT_A_WIDTH = 12
MAX_NUMBER_SCALE = 6
QR_MODULE_DOTS = 6
IMAGE_QR_MODULE_DOTS = 4  # 0.5 mm modules: still easy to scan, a third of the bytes of 6
MAX_LINES_PER_FIELD = 3

#: Code pages tried in order; the first that can print every character wins.
#: CP1252 covers Finnish, Swedish and Estonian (ä ö å õ š ž) in one page.
PREFERRED_CODEPAGES = ("CP1252", "CP858", "CP850", "ISO_8859-15", "CP1257", "CP437")


@dataclass(frozen=True)
class TicketContent:
    """What goes on the paper, already in the customer's language."""

    branch: str
    number: str
    service: str
    issued: str
    url: str
    service_text: str = ""
    header: str = ""
    footer: str = ""
    scan_hint: str = ""
    queue_line: str = ""
    location: str = ""  # where to go ("Room 204, 2nd floor"), under the service's name
    notice: str = ""  # e.g. "COPY" on a reprint, printed inverted on top
    note: str = ""  # small, under the date: e.g. "Given at the counter"


def printable(text: str) -> str:
    """What of ``text`` belongs on paper.

    Control characters go (a name must never smuggle in a printer command),
    and so do emoji, which no code page has; letters are composed (NFC) so a
    decomposed "ä" still prints as one character. Whitespace collapses.
    """
    kept = []
    for ch in unicodedata.normalize("NFC", text):
        category = unicodedata.category(ch)
        if ch.isspace():
            kept.append(" ")
        elif category[0] == "C" or category == "So" or _is_emoji_modifier(ch):
            continue
        else:
            kept.append(ch)
    return " ".join("".join(kept).split())


def _is_emoji_modifier(ch: str) -> bool:
    return 0xFE00 <= ord(ch) <= 0xFE0F or 0x1F3FB <= ord(ch) <= 0x1F3FF


def _codepage_for(texts: list[str], supported: set[str]) -> str:
    """The preferred page that can encode the most of ``texts``' characters."""
    chars = set("".join(texts))
    best, best_count = "CP437", -1
    for name in PREFERRED_CODEPAGES:
        if name not in supported:
            continue
        codec = name.replace("_", "-").lower()
        count = sum(1 for ch in chars if _encodes(ch, codec))
        if count > best_count:
            best, best_count = name, count
    return best


def _encodes(ch: str, codec: str) -> bool:
    try:
        ch.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def qr_image(
    data: str | bytes,
    module_dots: int = IMAGE_QR_MODULE_DOTS,
    *,
    border: int = 2,
    error_correction: int = qrcode.constants.ERROR_CORRECT_M,
) -> Image.Image:
    """A QR code as a 1-bit picture (for printers without native QR, and for
    the emulator drawing a native one)."""
    code = qrcode.QRCode(error_correction=error_correction, border=border)
    code.add_data(data)
    code.make(fit=True)
    matrix = code.get_matrix()
    size = len(matrix)
    picture = Image.new("1", (size, size), 1)
    picture.putdata([0 if dark else 1 for row in matrix for dark in row])
    return picture.resize((size * module_dots, size * module_dots), Image.NEAREST)


def _fit(text: str, columns: int) -> list[str]:
    """Wrap to the paper; cut what would not fit in a few lines."""
    return textwrap.wrap(
        text,
        max(columns, 4),
        max_lines=MAX_LINES_PER_FIELD,
        placeholder="...",
        break_long_words=True,
    ) or [""]


def render_ticket(
    content: TicketContent,
    profile: str = DEFAULT_PROFILE,
    *,
    native_qr: bool = True,
    logo: bytes = b"",
) -> bytes:
    """The complete ticket, from init to cut, for ``profile``.

    The QR code is native (``GS ( k``, about 70 bytes) unless the profile
    lacks it or ``native_qr`` is off; then it is sent as a raster image.
    ``logo`` is a ready raster (see :mod:`printer.logo`), printed centred on top.
    """
    p = escpos().Dummy(profile=profile)
    width = profile_media_width(profile)
    columns = width // FONT_A_WIDTH

    fields = {
        name: printable(getattr(content, name)) for name in TicketContent.__dataclass_fields__
    }
    supported = set(p.profile.profile_data["codePages"].values())
    codepage = _codepage_for(list(fields.values()), supported)
    codec = codepage.replace("_", "-").lower()
    for name, value in fields.items():
        fields[name] = "".join(ch if _encodes(ch, codec) else "?" for ch in value)

    p.hw("INIT")
    p.charcode(codepage)
    if logo:
        p.set(align="center")
        p._raw(logo)

    def block(text: str, *, double: bool = False, bold: bool = False) -> None:
        if not text:
            return
        p.set(align="center", bold=bold, double_width=double, double_height=double)
        for line in _fit(text, columns // 2 if double else columns):
            p.textln(line)

    if fields["notice"]:
        p.set(align="center", bold=True, invert=True)
        p.textln(f" {fields['notice']} ")
        p.set(invert=False)
    block(fields["header"])
    block(fields["branch"], bold=True)
    p.ln()
    block(fields["service"], double=True, bold=True)
    if fields["location"]:  # back to normal size after the double-size name
        p.set(normal_textsize=True)
        block(fields["location"], bold=True)
    number = fields["number"]
    scale = max(1, min(MAX_NUMBER_SCALE, width // (FONT_A_WIDTH * max(len(number), 1))))
    p.set(align="center", bold=True, custom_size=True, width=scale, height=scale)
    p.textln(number)
    p.set(align="center", normal_textsize=True, bold=False)
    block(fields["service_text"], bold=True)
    block(fields["queue_line"])
    block(fields["issued"])
    block(fields["note"])
    p.ln()
    p.set(align="center")
    if native_qr and p.profile.supports("qrCode"):
        p.qr(content.url, native=True, size=QR_MODULE_DOTS)
    else:  # centred by ESC a, so only the code's own width travels
        p.image(qr_image(content.url), impl="bitImageRaster", center=False)
    p.ln()
    block(fields["scan_hint"])
    block(fields["footer"])
    p.cut()
    return p.output


def render_test_page(profile: str = DEFAULT_PROFILE, footer: str = "") -> bytes:
    """A page that shows the printer, its code page and its QR code work."""
    return render_ticket(
        TicketContent(
            branch="Vuoro test page",
            number="T000",
            service="Printer test",
            issued=f"{datetime.now():%Y-%m-%d %H:%M}",
            url="https://example.org/vuoro-printer-test",
            service_text="ÄÖÅ äöå Õ õ Š š Ž ž",
            footer=footer or f"profile {profile}",
        ),
        profile,
    )
