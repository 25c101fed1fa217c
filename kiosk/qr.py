"""The QR code on screen: the same code the paper carries, as a Kivy texture."""

from __future__ import annotations

import qrcode
from kivy.graphics.texture import Texture

QUIET_ZONE = 4
TEXELS_PER_MODULE = 4  # keeps every texture row a multiple of 4 bytes (GL unpack alignment)


def qr_matrix(url: str) -> list[list[bool]]:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=QUIET_ZONE)
    code.add_data(url)
    code.make(fit=True)
    return code.get_matrix()


def qr_texture(url: str) -> Texture:
    """A few texels per module; the widget scales it up with nearest filtering."""
    matrix = qr_matrix(url)
    size = len(matrix) * TEXELS_PER_MODULE
    rows = []
    for row in reversed(matrix):  # Kivy textures start at the bottom row
        line = bytes(0 if cell else 255 for cell in row for _ in range(TEXELS_PER_MODULE))
        rows.extend([line] * TEXELS_PER_MODULE)
    pixels = b"".join(rows)
    texture = Texture.create(size=(size, size), colorfmt="luminance")
    texture.blit_buffer(pixels, colorfmt="luminance", bufferfmt="ubyte")
    texture.mag_filter = "nearest"
    texture.min_filter = "nearest"
    return texture
