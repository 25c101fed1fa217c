"""The one place python-escpos is imported, with its import-time habits tamed.

python-escpos creates a temporary directory per import for its capabilities
pickle unless ``ESCPOS_CAPABILITIES_PICKLE_DIR`` is set, so we point it at a
per-user cache directory first.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(tempfile.gettempdir(), "vuoro-cache")
    path = Path(base) / f"vuoro-escpos-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@cache
def escpos() -> ModuleType:
    """``escpos.printer``, imported once the pickle dir is set."""
    cache = _cache_dir()
    os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(cache))
    # python-escpos writes its pickle in place on a first (or stale) import: two
    # processes starting at once (the kiosk and the printer after an upgrade,
    # parallel tests) would read each other's half-written file
    with open(cache / "import.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        import escpos.printer

    return escpos.printer


@cache
def profile_codepages(profile: str) -> dict[int, str]:
    """The profile's ESC t table: number → python codec (or a 128-char table)."""
    escpos()
    from escpos.capabilities import get_profile
    from escpos.codepages import CodePages

    pages: dict[int, str] = {}
    for number, name in get_profile(profile).profile_data["codePages"].items():
        try:
            encoding = CodePages.get_encoding(name)
        except (KeyError, ValueError):
            continue
        if "python_encode" in encoding:
            pages[int(number)] = encoding["python_encode"]
        elif "data" in encoding:
            pages[int(number)] = "".join(encoding["data"])
    return pages


@cache
def profile_media_width(profile: str) -> int:
    """Printable width in dots, from the profile (576 for 80 mm, 384 for 58 mm)."""
    escpos()
    from escpos.capabilities import get_profile

    pixels = get_profile(profile).profile_data.get("media", {}).get("width", {}).get("pixels")
    return pixels if isinstance(pixels, int) and pixels >= 384 else 576


@dataclass(frozen=True)
class ProfileSummary:
    name: str
    vendor: str
    model: str
    width_dots: int
    native_qr: bool
    cutter: bool


@cache
def profiles() -> dict[str, ProfileSummary]:
    """Every printer profile python-escpos knows, by name."""
    escpos()
    from escpos.capabilities import CAPABILITIES

    summaries = {}
    for name, data in CAPABILITIES["profiles"].items():
        features = data.get("features", {})
        summaries[name] = ProfileSummary(
            name=name,
            vendor=str(data.get("vendor", "")),
            model=str(data.get("name", "")),
            width_dots=profile_media_width(name),
            native_qr=bool(features.get("qrCode")),
            cutter=bool(features.get("paperFullCut") or features.get("paperPartCut")),
        )
    return summaries
