"""Getting a window: what the system must have, and Kivy's config before import.

Kivy creates its window on import and fails deep inside SDL when a library or
a display is missing; we check first and name the exact fix instead.
"""

from __future__ import annotations

import ctypes.util
import glob
import os
from pathlib import Path

#: shared library → the Debian / Raspberry Pi OS package that provides it
REQUIRED_LIBRARIES = {"mtdev": "libmtdev1", "GL": "libgl1", "EGL": "libegl1"}
MESA_DRIVERS = "/usr/lib/*/dri/*_dri.so"


def missing_packages() -> list[str]:
    missing = [pkg for lib, pkg in REQUIRED_LIBRARIES.items() if not ctypes.util.find_library(lib)]
    if not glob.glob(MESA_DRIVERS):
        missing.append("libgl1-mesa-dri")
    return missing


def problem() -> str | None:
    """Why no window can open here, with the fix; None if it should."""
    missing = missing_packages()
    if missing:
        return (
            "the window needs system libraries that are missing. Install them with:\n"
            f"    sudo apt-get install -y {' '.join(missing)}"
        )
    if not (
        os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
        or os.environ.get("SDL_VIDEODRIVER")
    ):
        return (
            "no display: run it from a desktop session, set SDL_VIDEODRIVER=kmsdrm on a "
            "Raspberry Pi console, or use a virtual screen: xvfb-run -s '-screen 0 1024x600x24' "
            "vuoro-kiosk"
        )
    return None


def configure_kivy(
    *, kiosk_mode: bool, kivy_home: Path, size: tuple[int, int] = (1024, 600)
) -> None:
    """Kivy's settings, which must be made before any other Kivy import."""
    kivy_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KIVY_HOME", str(kivy_home))
    os.environ.setdefault("KIVY_NO_ARGS", "1")  # our argv is not Kivy's
    os.environ.setdefault("KIVY_NO_FILELOG", "1")  # the journal keeps logs
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")  # log through our handlers
    from kivy.config import Config

    Config.set("kivy", "exit_on_escape", "0")
    Config.set("input", "mouse", "mouse,disable_multitouch")
    Config.set("graphics", "show_cursor", "0" if kiosk_mode else "1")
    Config.set("graphics", "fullscreen", "auto" if kiosk_mode else "0")
    Config.set("graphics", "borderless", "1" if kiosk_mode else "0")
    Config.set("graphics", "resizable", "0" if kiosk_mode else "1")
    if not kiosk_mode:
        Config.set("graphics", "width", str(size[0]))
        Config.set("graphics", "height", str(size[1]))
        Config.set("graphics", "position", "custom")  # top-left: predictable for tests
        Config.set("graphics", "left", "0")
        Config.set("graphics", "top", "0")
