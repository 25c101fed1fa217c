"""Screenshots of every kiosk screen in every built-in language and mode, and
the contrast check over them.

``python -m tests.screens DIR`` (``make screenshots``) starts the real kiosk
(tests.kiosk_probe) on a virtual 800x480 screen, the official 7" Pi display,
and a 1024x600 one, puts each screen of tests.screen_stages.STAGES on show in
each language and each mode (default, large text, high contrast, both), saves
``DIR/<screen>-<language>-<mode>.png`` (``-1024x600`` added for the larger
screen, English only) and checks every label on it: the contrast between
its glyphs and the background around them, measured from the pixels, must be
at least 4.5:1 (3:1 for large text: 32 px, or 24 px bold), as WCAG 2.x asks.
The worst label of each picture goes to ``DIR/contrast.txt``; a label below
the line fails the run. Text bigger than its box is listed there too.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from PIL import Image

from tests.kiosk_driver import Kiosk, VirtualScreen
from tests.screen_stages import STAGES

LANGUAGES = ("en", "fi", "sv", "et")
MODES = {  # name: (large text, high contrast)
    "default": (False, False),
    "large": (True, False),
    "contrast": (False, True),
    "large-contrast": (True, True),
}
PI_SCREEN = (800, 480)
LARGER_SCREEN = (1024, 600)
NORMAL_MIN, LARGE_MIN = 4.5, 3.0
DEMO_PIN_HASH = (  # PIN 1234, as in the embedded default config
    "$argon2id$v=19$m=65536,t=3,p=4$IyA+V95++n9Sg/lDKv+9FQ$"
    "IWhLtXqBVhUac9FprDEORk0LcENStecYNhpv6LOXKj4"
)

CONFIG = """
[kiosk]
language = "en"
languages = ["en", "fi", "sv", "et"]
return_home_s = 3600
language_reset_s = 3600
min_tap_interval_s = 0.5
require_time_sync = false  # the clock is sure: the closed service says so

[branch]
name = "City service point"
timezone = "Europe/Helsinki"

[printer]
backend = "emulator"

[admin]
pin_hash = "{pin_hash}"
idle_s = 3600

[[categories]]
id = "payments-and-permits"
name.en = "Payments and permits"
name.fi = "Maksut ja luvat"
name.sv = "Betalningar och tillstånd"
name.et = "Maksed ja load"

[[services]]
id = "payments"
prefix = "A"
name = {{ en = "Payments", fi = "Maksut", sv = "Betalningar", et = "Maksed" }}
category = "payments-and-permits"
location.en = "Room 204, 2nd floor"
location.fi = "Huone 204, 2. kerros"
location.sv = "Rum 204, 2 våningen"
location.et = "Ruum 204, 2. korrus"

[[services]]
id = "permits"
prefix = "B"
category = "payments-and-permits"
name.en = "Permits and licences"
name.fi = "Luvat, lisenssit ja henkilöllisyystodistukset"
name.sv = "Tillstånd och licenser"
name.et = "Load ja litsentsid"
text.en = "Have your ID ready"
text.fi = "Ota henkilöllisyystodistus esiin"
text.sv = "Ha legitimation redo"
text.et = "Hoidke isikut tõendav dokument käepärast"

[[services]]
id = "passports"
prefix = "D"
name = {{ en = "Passports", fi = "Passit", sv = "Pass", et = "Passid" }}
exceptions = {{ "{today}" = [] }}
"""


def config_text() -> str:
    """Three services, the last closed today (its reason is the detail text);
    the first two in a category, the first with a place to go."""
    today = datetime.now(ZoneInfo("Europe/Helsinki")).date().isoformat()
    return CONFIG.format(pin_hash=DEMO_PIN_HASH, today=today)


# -- the contrast check ---------------------------------------------------------------


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG 2.x relative luminance of sRGB colours (0-255, last axis RGB)."""
    channel = rgb.astype(np.float64) / 255.0
    linear = np.where(channel <= 0.04045, channel / 12.92, ((channel + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def contrast(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """WCAG contrast ratio between luminances, 1 to 21."""
    return (np.maximum(first, second) + 0.05) / (np.minimum(first, second) + 0.05)


@dataclass(frozen=True)
class Measured:
    text: str
    ratio: float  # the glyphs against the background around them, from the pixels
    needed: float
    large: bool
    background: tuple[int, int, int]
    ink: tuple[int, int, int]

    @property
    def passes(self) -> bool:
        return self.ratio >= self.needed

    def __str__(self) -> str:
        return (
            f"{self.ratio:5.2f}:1 (needs {self.needed}:1) {self.text[:40]!r} "
            f"ink #{bytes(self.ink).hex()} on #{bytes(self.background).hex()}"
        )


def is_large(text: dict) -> bool:
    return text["font_size"] >= 32 or (text["bold"] and text["font_size"] >= 24)


def _covered(box: list[float], layer: int, layers: list[list[float]]) -> bool:
    """Whether a later window layer (the time-limit band) lies over ``box``."""
    x, y, w, h = box
    for lx, ly, lw, lh in layers[layer + 1 :]:
        if lx < x + w and x < lx + lw and ly < y + h and y < ly + lh:
            return True
    return False


def glyph_region(text: dict, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The pixels the label's glyphs are drawn on: its texture inside its widget,
    inside the screen; None when nothing of it is on screen."""
    bx, by, bw, bh = text["box"]
    gx, gy, gw, gh = text["glyphs"]
    left, top = max(bx, gx, 0), max(by, gy, 0)
    right, bottom = min(bx + bw, gx + gw, size[0]), min(by + bh, gy + gh, size[1])
    if right - left < 2 or bottom - top < 2:
        return None
    return int(left), int(top), int(right + 0.999), int(bottom + 0.999)


def measure(image: Image.Image, text: dict, region: tuple[int, int, int, int]) -> Measured:
    """The glyphs' contrast against their background, from the pixels alone.

    The background is the region's most common colour (the UI paints flat
    colours); the ink is what stands out from it most, taken at the 6th most
    contrasting pixel so that one stray pixel of a neighbour does not count.
    Text drawn in the background's own colour measures 1:1.
    """
    pixels = np.asarray(image.convert("RGB").crop(region)).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    ratios = contrast(relative_luminance(pixels), relative_luminance(background))
    order = np.argsort(ratios)[::-1]
    pick = order[min(5, len(order) - 1)]
    large = is_large(text)
    return Measured(
        text=text["text"],
        ratio=float(ratios[pick]),
        needed=LARGE_MIN if large else NORMAL_MIN,
        large=large,
        background=tuple(int(v) for v in background),
        ink=tuple(int(v) for v in pixels[pick]),
    )


def overflowing(answer: dict) -> list[str]:
    """Labels whose text is bigger than the widget holding it: Kivy draws it
    over its neighbours, or leaves lines out, or cuts it short with "..." (a
    layout fault, not a contrast one: reported, not failed)."""
    found = []
    for text in answer["texts"]:
        if text["opacity"] < 0.01:
            continue
        _x, _y, bw, bh = text["box"]
        _gx, _gy, gw, gh = text["glyphs"]
        nw, nh = text.get("needs", (gw, gh))
        gw, gh = max(gw, nw), max(gh, nh)  # a text_size clips what does not fit
        if gw > bw * 1.1 + 2 or gh > bh * 1.1 + 2:  # a line's own padding may spill
            found.append(f"{text['text'][:40]!r} needs {gw:.0f}x{gh:.0f}, has {bw:.0f}x{bh:.0f}")
        elif text.get("shortened"):
            found.append(f"{text['text'][:40]!r} is cut short with '...' in {bw:.0f}x{bh:.0f}")
    return found


def check(image: Image.Image, answer: dict) -> list[Measured]:
    """Every visible label's contrast on ``image``, the worst first."""
    found = []
    for text in answer["texts"]:
        if text["opacity"] < 0.01 or _covered(text["box"], text["layer"], answer["layers"]):
            continue
        region = glyph_region(text, image.size)
        if region is not None:
            found.append(measure(image, text, region))
    return sorted(found, key=lambda m: m.ratio / m.needed)


# -- taking the pictures ------------------------------------------------------------------


class StagedKiosk(Kiosk):
    """The real kiosk (tests.kiosk_probe) that puts a named screen on show."""

    def __init__(self, screen: VirtualScreen, folder: Path, size: tuple[int, int]) -> None:
        self.probe_dir = folder / "probe"
        self.probe_dir.mkdir(parents=True)
        config = folder / "kiosk.toml"
        config.write_text(config_text(), encoding="utf-8")
        self.size = size
        super().__init__(
            screen,
            folder / "state",
            config,
            size=size,
            command=(sys.executable, "-m", "tests.kiosk_probe"),
            env={"VUORO_PROBE": str(self.probe_dir)},
        )

    def _wait_gone(self, path: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while path.exists():
            if not self.alive():
                raise AssertionError(f"kiosk exited:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the probe did not take {path.name}\n{self.log}")
            time.sleep(0.03)

    def ask(self, timeout: float = 20) -> dict:
        answer = self.probe_dir / "answer.json"
        answer.unlink(missing_ok=True)
        (self.probe_dir / "ask").touch()
        self._wait_gone(self.probe_dir / "ask", timeout)
        return json.loads(answer.read_text(encoding="utf-8"))

    def show(self, screen: str, language: str, mode: str, timeout: float = 20) -> None:
        large, high = MODES[mode]
        order = {"screen": screen, "language": language, "large_text": large, "high_contrast": high}
        new = self.probe_dir / "do.json.new"
        new.write_text(json.dumps(order), encoding="utf-8")
        new.replace(self.probe_dir / "do.json")
        self._wait_gone(self.probe_dir / "do.json", timeout)

    def picture(self, timeout: float = 20) -> tuple[Image.Image, dict]:
        """The screen once it stands still: the same layout twice, then the same
        pixels twice (Kivy lays out and draws a frame or two after a change)."""
        deadline, last = time.monotonic() + timeout, None
        while True:
            answer = self.ask()
            if answer == last:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the layout never settled\n{self.log}")
            last = answer
            time.sleep(0.1)
        before = None
        while True:
            image = self.screen.screenshot().crop((0, 0, *self.size)).convert("RGB")
            if before is not None and np.array_equal(np.asarray(image), np.asarray(before)):
                return image, answer
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never stood still\n{self.log}")
            before = image
            time.sleep(0.1)


@dataclass(frozen=True)
class Shot:
    path: Path
    worst: list[Measured]
    overflows: list[str]

    @property
    def failures(self) -> list[Measured]:
        return [m for m in self.worst if not m.passes]


def save_optimised(image: Image.Image, path: Path) -> None:
    """A palette PNG: the UI's flat colours and their edges fit in 256, a
    tenth of the size of the RGB picture."""
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def take(
    out_dir: Path,
    screens: tuple[str, ...] | None = None,
    languages: tuple[str, ...] = LANGUAGES,
    modes: tuple[str, ...] = tuple(MODES),
    size: tuple[int, int] = PI_SCREEN,
    suffix: str = "",
) -> list[Shot]:
    """Each screen x language x mode on one kiosk (the staff's screens in the
    kiosk's language, each built-in one in turn)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stages = [s for s in STAGES if screens is None or s.name in screens]
    shots = []
    screen = VirtualScreen(size)
    with tempfile.TemporaryDirectory() as folder:
        kiosk = StagedKiosk(screen, Path(folder), size)
        try:
            for stage in stages:
                for language in languages:
                    for mode in modes:
                        kiosk.show(stage.name, language, mode)
                        image, answer = kiosk.picture()
                        path = out_dir / f"{stage.name}-{language}-{mode}{suffix}.png"
                        save_optimised(image, path)
                        shots.append(Shot(path, check(image, answer), overflowing(answer)))
        finally:
            kiosk.stop()
            screen.close()
    return shots


def report(shots: list[Shot]) -> str:
    lines = [
        "Contrast of every label (WCAG 2.x: 4.5:1, large text 3:1), measured from the",
        "pixels by tests/screens.py; per screenshot its lowest label.",
        "",
    ]
    for shot in shots:
        worst = shot.worst[0] if shot.worst else None
        verdict = "FAIL" if shot.failures else "ok  "
        lines.append(f"{verdict} {shot.path.name:44} {worst if worst else 'no text'}")
        lines.extend(f"     {m}" for m in shot.failures)
        lines.extend(f"     text overflows its box: {o}" for o in shot.overflows)
    return "\n".join(lines) + "\n"


def main(out_dir: Path) -> int:
    shots = take(out_dir)
    shots += take(out_dir, languages=("en",), size=LARGER_SCREEN, suffix="-1024x600")
    text = report(shots)
    (out_dir / "contrast.txt").write_text(text, encoding="utf-8")
    failed = [s for s in shots if s.failures]
    worst = min((m for s in shots for m in s.worst), key=lambda m: m.ratio / m.needed)
    print(f"{len(shots)} screenshots in {out_dir}; the lowest contrast: {worst}")
    overflows = sum(len(s.overflows) for s in shots)
    if overflows:
        print(f"{overflows} labels overflow their boxes: see {out_dir / 'contrast.txt'}")
    if failed:
        print(text, file=sys.stderr)
        print(f"{len(failed)} screenshots have text under the line", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m tests.screens DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
