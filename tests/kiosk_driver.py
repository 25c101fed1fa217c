"""Drive the real kiosk: a virtual X screen, the real ``vuoro-kiosk`` process,
real clicks and keys (xdotool), screenshots of what a customer would see.

Also ``python -m tests.kiosk_driver screenshots DIR`` regenerates the README's
screenshots.
"""

from __future__ import annotations

import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageFilter, ImageGrab, ImageOps

SCREEN = (1024, 600)
READY = "kiosk ready"
REPO = Path(__file__).resolve().parent.parent
KIOSK = Path(sys.executable).parent / "vuoro-kiosk"


class VirtualScreen:
    """An Xvfb display of its own (``-displayfd`` picks a free number)."""

    def __init__(self, size: tuple[int, int] = SCREEN) -> None:
        read_fd, write_fd = os.pipe()
        self.process = subprocess.Popen(
            [
                "Xvfb",
                "-displayfd",
                str(write_fd),
                "-screen",
                "0",
                f"{size[0]}x{size[1]}x24",
                "-nolisten",
                "tcp",
                "-noreset",
            ],
            pass_fds=[write_fd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"

    def env(self) -> dict[str, str]:
        return {"DISPLAY": self.display}

    def screenshot(self) -> Image.Image:
        return ImageGrab.grab(xdisplay=self.display)

    def hold(self, x: int, y: int, seconds: float) -> None:
        """A long press: the pointer down for ``seconds``, then up."""
        self.xdotool("mousemove", str(x), str(y))
        self.xdotool("mousedown", "1")
        time.sleep(seconds)
        self.xdotool("mouseup", "1")

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=os.environ | self.env(), check=True, timeout=10)

    def click(self, x: int, y: int) -> None:
        """A real pointer press and release: Kivy gets it as a touch."""
        self.xdotool("mousemove", str(x), str(y), "click", "1")

    def key(self, *names: str) -> None:
        """Keys go to the window under the pointer (no window manager here)."""
        self.xdotool("mousemove", str(SCREEN[0] // 2), "5")
        for name in names:
            self.xdotool("key", name)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Kiosk:
    """One ``vuoro-kiosk`` process on a virtual screen, with its own state dir."""

    def __init__(
        self,
        screen: VirtualScreen,
        state_dir: Path,
        config: Path | None = None,
        extra_args: tuple[str, ...] = ("--windowed",),
        env: dict[str, str] | None = None,
        command: tuple[str, ...] = (str(KIOSK),),
        log_dir: Path | None = None,
        size: tuple[int, int] = SCREEN,
    ) -> None:
        self.screen = screen
        self.state_dir = state_dir
        self.log_path = (log_dir or state_dir) / f"kiosk-{time.monotonic_ns()}.log"
        state_dir.mkdir(parents=True, exist_ok=True)
        args = [
            *command,
            "--state-dir",
            str(state_dir),
            *extra_args,
            "--size",
            f"{size[0]}x{size[1]}",
        ]
        if config:
            args += ["--config", str(config)]
        env = os.environ | screen.env() | {"PYTHONUNBUFFERED": "1"} | (env or {})
        env.pop("VUORO_CONFIG", None)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
            )
        self.wait_for_log(READY, timeout=60)
        time.sleep(0.3)  # the first frames after "ready"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30, times: int = 1) -> None:
        """Until ``text`` stands in the log ``times`` times (a second menu opening
        is not the first one again)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.count(text) >= times:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"kiosk exited ({self.process.returncode}):\n{self.log}")
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in the kiosk log within {timeout}s:\n{self.log}")

    def tickets(self) -> list[dict]:
        with sqlite3.connect(self.state_dir / "state.db", timeout=10) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM tickets ORDER BY kiosk_seq")]

    def wait_for_tickets(self, count: int, states: tuple[str, ...] = (), timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.tickets()
            if len(rows) >= count and all(not states or r["state"] in states for r in rows):
                return rows
            time.sleep(0.05)
        raise AssertionError(
            f"expected {count} tickets {states}, have {self.tickets()}\n{self.log}"
        )

    def printed_pngs(self) -> list[Path]:
        return sorted((self.state_dir / "printed").glob("*.png"))

    def wait_for_pngs(self, count: int, timeout: float = 30) -> list[Path]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pngs = self.printed_pngs()
            if len(pngs) >= count:
                return pngs
            time.sleep(0.05)
        raise AssertionError(f"expected {count} printed tickets, have {self.printed_pngs()}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up runs, as in a power cut."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def button_center(index: int, count: int) -> tuple[int, int]:
    """Where the Nth home-screen button is, for a one-column list.

    Mirrors home.kv: a 13% top bar and a 12% prompt, then the grid with 12 dp
    top and 28 dp bottom padding and 22 dp spacing.
    """
    width, height = SCREEN
    top = height * 0.25 + 12
    bottom = height - 28
    row = (bottom - top - 22 * (count - 1)) / count
    return width // 2, int(top + index * (row + 22) + row / 2)


def language_button_center(index: int, count: int) -> tuple[int, int]:
    """The Nth language button in the top bar (home.kv: 120 dp wide, 8 dp apart,
    left of the 110 dp clock, inside 24 dp padding; the bar is 13% high)."""
    width, height = SCREEN
    right = width - 24 - 110
    left = right - (count * 120 + (count - 1) * 8)
    return int(left + index * 128 + 60), int(height * 0.13 / 2)


def ocr_text(image: Image.Image) -> str:
    """What tesseract reads on a screenshot."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return subprocess.run(
        ["tesseract", "stdin", "-", "--psm", "11"],
        input=buffer.getvalue(),
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode(errors="replace")


def find_text(image: Image.Image, word: str, last: bool = False) -> tuple[int, int]:
    """The centre of ``word`` on a screenshot, as tesseract finds it (to click it).

    White text on coloured buttons reads better as black on white, so the
    screenshot, its inverted grey copy and its white pixels alone are tried.
    """
    grey = image.convert("L")
    for psm in ("11", "12"):
        for variant in (image, ImageOps.invert(grey), grey.point(lambda v: 0 if v > 250 else 255)):
            found = _word_boxes(variant, word, psm)
            if found:
                return found[-1] if last else found[0]
    raise AssertionError(f"{word!r} not on screen: {ocr_text(image)}")


def find_on_screen(
    screen, word: str, last: bool = False, timeout: float = 30
) -> tuple[Image.Image, tuple[int, int]]:
    """A screenshot showing ``word`` and where it is: taken again until the word
    is drawn (a screen changes a frame or more after a tap, later on a busy
    machine), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        image = screen.screenshot()
        try:
            return image, find_text(image, word, last)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _word_boxes(image: Image.Image, word: str, psm: str) -> list[tuple[int, int]]:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    tsv = subprocess.run(
        ["tesseract", "stdin", "-", "--psm", psm, "tsv"],
        input=buffer.getvalue(),
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode(errors="replace")
    found = []
    for line in tsv.splitlines()[1:]:
        cells = line.split("\t")
        if len(cells) == 12 and cells[11].strip() == word:
            left, top, width, height = (int(v) for v in cells[6:10])
            found.append((left + width // 2, top + height // 2))
    return found


def ocr_ticket_numbers(png: Path) -> set[str]:
    """Queue numbers tesseract reads off a printed ticket's pixels.

    The big number is 12x24-dot glyphs multiplied up, as a thermal printer
    does, in a font whose zero carries a dot; tesseract reads the sharp and
    a blurred copy, and round or dotted zeros (O, Q) and ones (I, l, ]) are
    taken for digits after the prefix letters.
    """
    image = Image.open(png)
    numbers = set()
    for variant in (image, image.filter(ImageFilter.GaussianBlur(4))):
        text = ocr_text(variant)
        for token in text.split():
            match = re.fullmatch(r"([A-Z]{1,3})([0-9OQIl\]]{3,4})", token)
            if match:
                numbers.add(match.group(1) + match.group(2).translate(_DIGITS))
    return numbers


_DIGITS = str.maketrans("OQIl]", "00111")


def screenshots(out_dir: Path) -> None:
    """Home and ticket screens of the embedded default, for the README."""
    import tempfile

    out_dir.mkdir(parents=True, exist_ok=True)
    screen = VirtualScreen()
    with tempfile.TemporaryDirectory() as state:
        kiosk = Kiosk(screen, Path(state))
        try:
            screen.screenshot().save(out_dir / "kiosk-home.png")
            screen.click(*button_center(1, 3))
            kiosk.wait_for_tickets(1, ("printed",))
            time.sleep(1.3)  # past the double-tap grace: "Done" is live
            screen.screenshot().save(out_dir / "kiosk-ticket.png")
            png = kiosk.wait_for_pngs(1)[0]
            Image.open(png).save(out_dir / "printed-ticket.png")
        finally:
            kiosk.stop()
            screen.close()
    print(f"screenshots written to {out_dir}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "screenshots":
        screenshots(Path(sys.argv[2]))
    else:
        print("usage: python -m tests.kiosk_driver screenshots DIR", file=sys.stderr)
        sys.exit(2)
