"""An ESC/POS interpreter that turns printer bytes back into pixels.

It reads the same byte stream a real printer gets: text through the selected
code page, alignment, emphasis, character sizes, native QR codes (``GS ( k``),
raster (``GS v 0``) and column (``ESC *``) images, feeds and cuts. Tests use
it to prove what the paper would show; technicians use it to look at a
captured stream (``vuoro-printer render``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from printer.layout import qr_image

log = logging.getLogger(__name__)

ESC, GS, DLE, FS = 0x1B, 0x1D, 0x10, 0x1C
FONT_CELLS = {0: (12, 24), 1: (9, 17)}  # font A, font B, in dots
DEFAULT_LINE_SPACING = 30
MARGIN = 16  # white border around the rendered paper, in dots
QR_EC = {
    48: qrcode.constants.ERROR_CORRECT_L,
    49: qrcode.constants.ERROR_CORRECT_M,
    50: qrcode.constants.ERROR_CORRECT_Q,
    51: qrcode.constants.ERROR_CORRECT_H,
}
TRANSCRIPT_KEY = "Vuoro-Transcript"

#: Epson's standard ESC t table, used when no printer profile is given.
STANDARD_CODEPAGES = {
    0: "cp437",
    2: "cp850",
    3: "cp860",
    4: "cp863",
    5: "cp865",
    16: "cp1252",
    17: "cp866",
    18: "cp852",
    19: "cp858",
    40: "iso8859-15",
    45: "cp1250",
    46: "cp1251",
    51: "cp1257",
}


class Incomplete(Exception):
    """The buffer ends inside a command; wait for more bytes."""


@dataclass
class Ticket:
    """One cut piece of paper."""

    image: Image.Image
    lines: list[str]
    qr_codes: list[str]
    warnings: list[str]
    cut: bool

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def save_png(self, path: str | Path) -> None:
        """PNG with the decoded text in an iTXt chunk, for tests and for grep."""
        info = PngInfo()
        info.add_itxt(TRANSCRIPT_KEY, self.text)
        self.image.save(path, format="PNG", pnginfo=info)


@dataclass
class _Style:
    font: int = 0
    bold: bool = False
    underline: int = 0
    width: int = 1
    height: int = 1
    invert: bool = False


@dataclass
class _Glyph:
    char: str
    style: _Style


@dataclass
class _Page:
    bands: list[Image.Image] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    qr_codes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@cache
def _font(font: int, bold: bool) -> ImageFont.FreeTypeFont:
    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
    size = 20 if font == 0 else 15
    with resources.as_file(resources.files("printer") / "fonts" / name) as path:
        return ImageFont.truetype(str(path), size)


@cache
def _glyph(char: str, font: int, bold: bool, width: int, height: int) -> Image.Image:
    """One character cell, scaled by dot multiplication like the printer does."""
    cell_w, cell_h = FONT_CELLS[font]
    cell = Image.new("1", (cell_w, cell_h), 1)
    draw = ImageDraw.Draw(cell)
    face = _font(font, bold)
    draw.text((cell_w / 2, cell_h - 4), char, font=face, fill=0, anchor="ms")
    if width == 1 and height == 1:
        return cell
    return cell.resize((cell_w * width, cell_h * height), Image.NEAREST)


class EscPosRenderer:
    """Feed it bytes; it returns a :class:`Ticket` at every cut."""

    def __init__(
        self,
        width: int = 576,
        codepages: dict[int, str] | None = None,
        on_status_query: Callable[[int], None] | None = None,
    ) -> None:
        """``on_status_query(n)`` is called for each ``DLE EOT n`` in the stream."""
        self.width = width
        self.on_status_query = on_status_query
        self.codepages = codepages or STANDARD_CODEPAGES
        self._pending = b""
        self._reset()
        self._page = _Page()

    def _reset(self) -> None:
        self.style = _Style()
        self.align = 0
        self.codepage = 0
        self.line_spacing = DEFAULT_LINE_SPACING
        self.left_margin = 0
        self.area_width = self.width
        self.line: list[_Glyph] = []
        self.line_x = 0
        self.qr = {"module": 3, "ec": 48, "data": b""}

    # -- public ---------------------------------------------------------

    def feed(self, data: bytes) -> list[Ticket]:
        """Interpret ``data`` (continuing any command split across calls)."""
        buf = self._pending + data
        done: list[Ticket] = []
        pos = 0
        while pos < len(buf):
            try:
                pos, ticket = self._step(buf, pos)
            except Incomplete:
                break
            if ticket is not None:
                done.append(ticket)
        self._pending = buf[pos:]
        return done

    def finish(self) -> Ticket | None:
        """Whatever was printed after the last cut (a stream with no cut)."""
        if self._pending:
            self._page.warnings.append(f"stream ends inside a command: {self._pending[:16]!r}")
            self._pending = b""
        self._flush_line(force=False)
        if not self._page.bands:
            return None
        return self._take_page(cut=False)

    # -- interpretation ---------------------------------------------------

    def _step(self, buf: bytes, pos: int) -> tuple[int, Ticket | None]:
        byte = buf[pos]
        if byte == 0x0A:
            self._flush_line(force=True)
            return pos + 1, None
        if byte in (0x0D, 0x00):
            return pos + 1, None
        if byte == 0x09:
            self._text(" " * (8 - len(self.line) % 8))
            return pos + 1, None
        if byte == 0x0C:
            self._flush_line(force=False)
            return pos + 1, None
        if byte == ESC:
            return self._esc(buf, pos)
        if byte == GS:
            return self._gs(buf, pos)
        if byte == DLE:
            return self._dle(buf, pos)
        if byte == FS:
            _need(buf, pos + 2)
            self._page.warnings.append(f"ignored FS {buf[pos + 1]:#04x}")
            return pos + 2, None
        if byte < 0x20:
            self._page.warnings.append(f"ignored control byte {byte:#04x}")
            return pos + 1, None
        end = pos + 1
        while end < len(buf) and buf[end] >= 0x20:
            end += 1
        self._text(self._decode(buf[pos:end]))
        return end, None

    def _decode(self, raw: bytes) -> str:
        table = self.codepages.get(self.codepage)
        if table is None:
            self._page.warnings.append(f"unknown code page {self.codepage}")
            table = "cp437"
        if len(table) == 128:  # a literal table of characters 128..255
            return "".join(chr(b) if b < 0x80 else table[b - 0x80] for b in raw)
        return raw.decode(table, errors="replace")

    def _esc(self, buf: bytes, pos: int) -> tuple[int, Ticket | None]:
        _need(buf, pos + 2)
        cmd = buf[pos + 1]
        simple: dict[int, Callable[[int], None]] = {
            ord("!"): self._print_mode,
            ord("E"): lambda n: setattr(self.style, "bold", bool(n & 1)),
            ord("G"): lambda n: setattr(self.style, "bold", bool(n & 1)),
            ord("-"): lambda n: setattr(self.style, "underline", n % 48 if n >= 48 else n),
            ord("a"): lambda n: setattr(self, "align", n % 48 if n >= 48 else n),
            ord("t"): lambda n: setattr(self, "codepage", n),
            ord("M"): lambda n: setattr(self.style, "font", 1 if n in (1, 49) else 0),
            ord("3"): lambda n: setattr(self, "line_spacing", n),
            ord("d"): lambda n: self._feed_dots(n * self.line_spacing),
            ord("J"): self._feed_dots,
        }
        ignored_one_arg = b" RVU{r=%"
        if cmd == ord("@"):
            self._flush_line(force=False)
            self._reset()
            return pos + 2, None
        if cmd == ord("2"):
            self.line_spacing = DEFAULT_LINE_SPACING
            return pos + 2, None
        if cmd in simple:
            _need(buf, pos + 3)
            simple[cmd](buf[pos + 2])
            return pos + 3, None
        if cmd == ord("c"):
            _need(buf, pos + 4)
            return pos + 4, None
        if cmd in ignored_one_arg:
            _need(buf, pos + 3)
            return pos + 3, None
        if cmd in (ord("$"), ord("\\")):
            _need(buf, pos + 4)
            return pos + 4, None
        if cmd == ord("p"):
            _need(buf, pos + 5)
            return pos + 5, None
        if cmd == ord("*"):
            return self._column_image(buf, pos)
        self._page.warnings.append(f"unknown ESC {cmd:#04x}")
        return pos + 2, None

    def _gs(self, buf: bytes, pos: int) -> tuple[int, Ticket | None]:
        _need(buf, pos + 2)
        cmd = buf[pos + 1]
        if cmd == ord("!"):
            _need(buf, pos + 3)
            n = buf[pos + 2]
            self.style.width = min((n >> 4) & 7, 7) + 1
            self.style.height = min(n & 7, 7) + 1
            return pos + 3, None
        if cmd == ord("B"):
            _need(buf, pos + 3)
            self.style.invert = bool(buf[pos + 2] & 1)
            return pos + 3, None
        if cmd == ord("V"):
            _need(buf, pos + 3)
            m = buf[pos + 2]
            end = pos + 3
            if m in (65, 66, 97, 98, 103, 104):
                _need(buf, pos + 4)
                self._feed_dots(buf[pos + 3])
                end = pos + 4
            self._flush_line(force=False)
            return end, self._take_page(cut=True)
        if cmd == ord("L"):
            _need(buf, pos + 4)
            self.left_margin = min(buf[pos + 2] | buf[pos + 3] << 8, self.width - 1)
            return pos + 4, None
        if cmd == ord("W"):
            _need(buf, pos + 4)
            self.area_width = max(1, min(buf[pos + 2] | buf[pos + 3] << 8, self.width))
            return pos + 4, None
        if cmd == ord("v"):
            return self._raster_image(buf, pos)
        if cmd == ord("("):
            _need(buf, pos + 5)
            length = buf[pos + 3] | buf[pos + 4] << 8
            end = pos + 5 + length
            _need(buf, end)
            if buf[pos + 2] == ord("k"):
                self._symbol(buf[pos + 5 : end])
            else:
                self._page.warnings.append(f"ignored GS ( {chr(buf[pos + 2])}")
            return end, None
        if cmd == ord("k"):
            return self._barcode(buf, pos)
        if cmd in b"bHhwfarIa":
            _need(buf, pos + 3)
            return pos + 3, None
        self._page.warnings.append(f"unknown GS {cmd:#04x}")
        return pos + 2, None

    def _dle(self, buf: bytes, pos: int) -> tuple[int, Ticket | None]:
        _need(buf, pos + 3)
        if buf[pos + 1] == 0x14:  # DLE DC4 fn m t
            _need(buf, pos + 5)
            return pos + 5, None
        if buf[pos + 1] == 0x04 and self.on_status_query:  # DLE EOT n: real-time status
            self.on_status_query(buf[pos + 2])
        return pos + 3, None  # DLE ENQ n and the like: nothing printed

    def _print_mode(self, n: int) -> None:
        self.style.font = n & 1
        self.style.bold = bool(n & 0x08)
        self.style.height = 2 if n & 0x10 else 1
        self.style.width = 2 if n & 0x20 else 1
        self.style.underline = 1 if n & 0x80 else 0

    # -- text -------------------------------------------------------------

    def _text(self, text: str) -> None:
        cell_w = FONT_CELLS[self.style.font][0]
        for char in text:
            advance = cell_w * self.style.width
            if self.line and self.line_x + advance > self.area_width - self.left_margin:
                self._flush_line(force=True)
            self.line.append(_Glyph(char, _Style(**vars(self.style))))
            self.line_x += advance

    def _flush_line(self, *, force: bool) -> None:
        """Print the line buffer; with ``force``, an empty line feeds one line."""
        if not self.line:
            if force:
                self._feed_dots(self.line_spacing)
            return
        glyphs = [
            _glyph(g.char, g.style.font, g.style.bold, g.style.width, g.style.height)
            for g in self.line
        ]
        tallest = max(img.height for img in glyphs)
        band = Image.new("1", (self.width, max(tallest, self.line_spacing)), 1)
        x = self.left_margin + self._align_offset(self.line_x)
        for glyph, img in zip(self.line, glyphs, strict=True):
            y = tallest - img.height
            if glyph.style.invert:
                band.paste(0, (x, y, x + img.width, y + img.height))
                band.paste(Image.eval(img.convert("L"), lambda v: 255 - v).convert("1"), (x, y))
            else:
                band.paste(img, (x, y))
            if glyph.style.underline:
                ImageDraw.Draw(band).rectangle(
                    (x, tallest - glyph.style.underline, x + img.width - 1, tallest - 1), fill=0
                )
            x += img.width
        self._page.bands.append(band)
        self._page.lines.append("".join(g.char for g in self.line).rstrip())
        self.line = []
        self.line_x = 0

    def _align_offset(self, used: int) -> int:
        free = max(self.area_width - self.left_margin - used, 0)
        return {1: free // 2, 2: free}.get(self.align, 0)

    def _feed_dots(self, dots: int) -> None:
        if self.line:
            self._flush_line(force=False)
            dots = max(dots - self.line_spacing, 0)
        if dots:
            self._page.bands.append(Image.new("1", (self.width, dots), 1))

    # -- graphics ---------------------------------------------------------

    def _bitmap(self, image: Image.Image) -> None:
        """Print a 1-bit picture at the current alignment."""
        self._flush_line(force=False)
        image = image.convert("1")
        if image.width > self.width:
            self._page.warnings.append(f"image {image.width} dots wide, paper {self.width}")
            image = image.crop((0, 0, self.width, image.height))
        band = Image.new("1", (self.width, image.height), 1)
        band.paste(image, (self.left_margin + self._align_offset(image.width), 0))
        self._page.bands.append(band)

    def _symbol(self, body: bytes) -> None:
        """``GS ( k``: the QR code function set (cn = 49)."""
        if len(body) < 2 or body[0] != 49:
            self._page.warnings.append("ignored 2D symbol other than QR")
            return
        fn, args = body[1], body[2:]
        if fn == 67 and args:
            self.qr["module"] = max(1, min(args[0], 16))
        elif fn == 69 and args:
            self.qr["ec"] = args[0]
        elif fn == 80 and args:
            self.qr["data"] = bytes(args[1:])
        elif fn == 81:
            self._print_qr()

    def _print_qr(self) -> None:
        data = self.qr["data"]
        if not data:
            self._page.warnings.append("QR print with no stored data")
            return
        picture = qr_image(
            data,
            self.qr["module"],
            border=0,  # the printer's margins are the quiet zone
            error_correction=QR_EC.get(self.qr["ec"], qrcode.constants.ERROR_CORRECT_L),
        )
        self._bitmap(picture)
        self._page.qr_codes.append(data.decode("latin-1"))

    def _raster_image(self, buf: bytes, pos: int) -> tuple[int, None]:
        """``GS v 0 m xL xH yL yH d...``: row-major, 1 bit per dot, MSB left."""
        _need(buf, pos + 8)
        mode = buf[pos + 3]
        row_bytes = buf[pos + 4] | buf[pos + 5] << 8
        rows = buf[pos + 6] | buf[pos + 7] << 8
        end = pos + 8 + row_bytes * rows
        _need(buf, end)
        img = Image.frombytes("1", (row_bytes * 8, rows), bytes(buf[pos + 8 : end]))
        img = Image.eval(img.convert("L"), lambda v: 255 - v)  # 1 bits are black dots
        scale_w, scale_h = (
            (2 if mode in (1, 3, 49, 51) else 1),
            (2 if mode in (2, 3, 50, 51) else 1),
        )
        if (scale_w, scale_h) != (1, 1):
            img = img.resize((img.width * scale_w, img.height * scale_h), Image.NEAREST)
        self._bitmap(img)
        return end, None

    def _column_image(self, buf: bytes, pos: int) -> tuple[int, None]:
        """``ESC * m nL nH d...``: columns of 8 or 24 dots, MSB at top."""
        _need(buf, pos + 5)
        mode = buf[pos + 2]
        columns = buf[pos + 3] | buf[pos + 4] << 8
        depth = 3 if mode in (32, 33) else 1
        end = pos + 5 + columns * depth
        _need(buf, end)
        img = Image.new("1", (columns, depth * 8), 1)
        pixels = img.load()
        for col in range(columns):
            for k in range(depth):
                byte = buf[pos + 5 + col * depth + k]
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        pixels[col, k * 8 + bit] = 0
        if mode in (0, 32):  # single density: each column is printed twice as wide
            img = img.resize((columns * 2, img.height), Image.NEAREST)
        self._bitmap(img)
        return end, None

    def _barcode(self, buf: bytes, pos: int) -> tuple[int, None]:
        _need(buf, pos + 3)
        kind = buf[pos + 2]
        if kind <= 6:
            end = buf.find(b"\x00", pos + 3)
            if end < 0:
                raise Incomplete
            end += 1
        else:
            _need(buf, pos + 4)
            end = pos + 4 + buf[pos + 3]
            _need(buf, end)
        self._page.warnings.append("1D barcode not drawn")
        return end, None

    # -- pages ------------------------------------------------------------

    def _take_page(self, *, cut: bool) -> Ticket:
        page, self._page = self._page, _Page()
        height = sum(b.height for b in page.bands) + 2 * MARGIN
        image = Image.new("1", (self.width + 2 * MARGIN, height), 1)
        y = MARGIN
        for band in page.bands:
            image.paste(band, (MARGIN, y))
            y += band.height
        if page.warnings:
            log.debug("render warnings: %s", page.warnings)
        return Ticket(image.convert("L"), page.lines, page.qr_codes, page.warnings, cut)


def _need(buf: bytes, end: int) -> None:
    if len(buf) < end:
        raise Incomplete


def render_bytes(
    data: bytes, width: int = 576, codepages: dict[int, str] | None = None
) -> list[Ticket]:
    """Every piece of paper ``data`` would print, one per cut (plus any tail)."""
    renderer = EscPosRenderer(width, codepages)
    tickets = renderer.feed(data)
    tail = renderer.finish()
    return [*tickets, tail] if tail else tickets


def read_transcript(png: str | Path) -> str:
    """The decoded text a rendered PNG carries."""
    with Image.open(png) as img:
        return img.text.get(TRANSCRIPT_KEY, "")
