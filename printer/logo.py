"""The ticket's logo: converted once to the printer's dots, then reused as bytes.

Converting and dithering a PNG costs tens of milliseconds; a cached raster is
read in microseconds. The cache key is the image's content and the target
width, so a new logo or another printer makes a new entry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image, ImageOps

from printer.errors import PrinterConfigError
from printer.escpos_lib import escpos
from printer.layout import DEFAULT_PROFILE

MAX_HEIGHT_DOTS = 96
THRESHOLD = 176  # luminance below this prints black
WIDTH_SHARE = 0.6  # of the paper: a logo, not a banner


def convert(source: Path, paper_dots: int) -> bytes:
    """``GS v 0`` raster of ``source``, fitted into the paper, dithered to 1 bit."""
    try:
        with Image.open(source) as img:
            img.load()
            picture = img.convert("RGBA")
    except (OSError, ValueError) as exc:
        raise PrinterConfigError(f"logo {source}: not a readable image ({exc})") from exc
    white = Image.new("RGBA", picture.size, "white")
    picture = Image.alpha_composite(white, picture).convert("L")
    box = (int(paper_dots * WIDTH_SHARE) // 8 * 8, MAX_HEIGHT_DOTS)
    picture = ImageOps.contain(picture, box, Image.LANCZOS)
    # logos are flat artwork: a threshold keeps edges crisp where dithering would speckle
    mono = picture.point(lambda v: 255 if v >= THRESHOLD else 0).convert(
        "1", dither=Image.Dither.NONE
    )
    p = escpos().Dummy(profile=DEFAULT_PROFILE)
    p.image(mono, impl="bitImageRaster", center=False)
    return p.output


def cached(source: Path, paper_dots: int, cache_dir: Path) -> bytes:
    """The converted logo, from ``cache_dir`` when it was made before."""
    try:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise PrinterConfigError(f"logo {source}: {exc.strerror}") from exc
    entry = cache_dir / f"logo-{digest}-{paper_dots}.bin"
    if entry.exists():
        return entry.read_bytes()
    data = convert(source, paper_dots)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(entry)
    return data
