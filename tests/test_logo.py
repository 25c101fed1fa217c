"""The logo: converted once to the paper's dots, cached, printed on top."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from kiosk import config
from printer import logo
from printer.errors import PrinterConfigError
from printer.layout import TicketContent, render_ticket
from printer.render import render_bytes
from tests.conftest import TWO_SERVICES


@pytest.fixture
def artwork(tmp_path) -> Path:
    picture = Image.new("RGBA", (800, 400), (0, 0, 0, 0))  # transparent background
    ImageDraw.Draw(picture).rectangle((100, 100, 700, 300), fill=(20, 60, 160, 255))
    path = tmp_path / "logo.png"
    picture.save(path)
    return path


def test_a_logo_is_fitted_into_the_paper_as_a_small_raster(artwork):
    data = logo.convert(artwork, 576)
    assert data.startswith(b"\x1dv0\x00")
    width_bytes = data[4] | data[5] << 8
    height = data[6] | data[7] << 8
    assert width_bytes * 8 <= 576 * logo.WIDTH_SHARE and height <= logo.MAX_HEIGHT_DOTS
    assert len(data) == 8 + width_bytes * height


def test_the_logo_prints_centred_above_the_text(artwork):
    content = TicketContent(
        branch="Konttori",
        number="A001",
        service="Maksut",
        issued="nyt",
        url="https://jono.example.fi/t/x",
    )
    plain = render_bytes(render_ticket(content))[0]
    with_logo = render_bytes(render_ticket(content, logo=logo.convert(artwork, 576)))[0]
    assert with_logo.lines == plain.lines
    image = with_logo.image
    top = image.crop((0, 0, image.width, 16 + 40))
    assert top.getextrema()[0] == 0, "black dots at the top: the logo"
    left, _, right, _ = image.crop((0, 16, image.width, 50)).point(lambda v: 255 - v).getbbox()
    assert abs((left + right) / 2 - image.width / 2) <= 8, "centred"


def test_the_conversion_is_cached_by_content_and_width(artwork, tmp_path, monkeypatch):
    first = logo.cached(artwork, 576, tmp_path / "cache")
    monkeypatch.setattr(logo, "convert", lambda *a: pytest.fail("converted twice"))
    assert logo.cached(artwork, 576, tmp_path / "cache") == first
    monkeypatch.undo()
    assert len(list((tmp_path / "cache").glob("logo-*.bin"))) == 1
    logo.cached(artwork, 384, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("logo-*.bin"))) == 2


def test_a_file_that_is_no_image_is_a_clear_error(tmp_path):
    bogus = tmp_path / "logo.png"
    bogus.write_text("<svg>not a png</svg>")
    with pytest.raises(PrinterConfigError, match="not a readable image"):
        logo.cached(bogus, 576, tmp_path / "cache")


def test_the_config_finds_the_logo_beside_itself_or_names_the_line(artwork, tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_text(TWO_SERVICES.replace("[ticket]", '[ticket]\nlogo = "logo.png"'))
    assert config.load(path).ticket["logo"] == str(artwork)
    path.write_text(TWO_SERVICES.replace("[ticket]", '[ticket]\nlogo = "missing.png"'))
    with pytest.raises(
        config.ConfigError, match=r"kiosk.toml:\d+: logo .*missing.png' is not a file"
    ):
        config.load(path)
