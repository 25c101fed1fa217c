"""Drive the real kiosk: a virtual X screen, the real ``vuoro-kiosk`` process,
real clicks and keys (xdotool), screenshots of what a customer would see.

The kiosk runs as ``tests.kiosk_probe`` (the real app that also says what is on
screen when asked), so a test waits for the state it needs (the first frame,
the Done button taking a tap, the screen switching) instead of sleeping.

Also ``python -m tests.kiosk_driver screenshots DIR`` regenerates the README's
screenshots.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageFilter, ImageGrab, ImageOps

SCREEN = (1024, 600)
PI_SCREEN = (800, 480)  # the official 7" display: 154 x 86 mm
READY = "kiosk ready"
REPO = Path(__file__).resolve().parent.parent
KIOSK = Path(sys.executable).parent / "vuoro-kiosk"
PROBE = (sys.executable, "-m", "tests.kiosk_probe")  # the real kiosk, answering questions


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
    """One kiosk process on a virtual screen, with its own state dir.

    By default the process is ``tests.kiosk_probe``: ``ask()`` then says what is
    on screen, ``until()`` waits for a state. Another ``command`` (a kiosk made
    to misbehave) is waited for by its pixels only.
    """

    probe_dir: Path | None = None

    def __init__(
        self,
        screen: VirtualScreen,
        state_dir: Path,
        config: Path | None = None,
        extra_args: tuple[str, ...] = ("--windowed",),
        env: dict[str, str] | None = None,
        command: tuple[str, ...] = PROBE,
        log_dir: Path | None = None,
        size: tuple[int, int] = SCREEN,
    ) -> None:
        self.screen = screen
        self.state_dir = state_dir
        self.size = size
        self.log_path = (log_dir or state_dir) / f"kiosk-{time.monotonic_ns()}.log"
        state_dir.mkdir(parents=True, exist_ok=True)
        self.probed = tuple(command) == PROBE
        self._own_probe_dir = self.probed and self.probe_dir is None
        if self._own_probe_dir:  # outside the state dir: a full disk there must not stop it
            self.probe_dir = Path(tempfile.mkdtemp(prefix="vuoro-probe-"))
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
        probe = {"VUORO_PROBE": str(self.probe_dir)} if self.probed else {}
        env = os.environ | screen.env() | {"PYTHONUNBUFFERED": "1"} | probe | (env or {})
        env.pop("VUORO_CONFIG", None)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
            )
        try:
            self.wait_for_log(READY, timeout=60)
            self.wait_for_first_frame()
        except BaseException:
            self.stop()  # nothing left behind by a kiosk that never came up
            raise

    def wait_for_first_frame(self, timeout: float = 30) -> None:
        """Until a frame of the running app is on screen: the probe answers twice
        (the main loop draws between two of its turns), or, without the probe,
        the window's pixels are drawn."""
        if self.probed:
            self.ask(timeout)
            self.ask(timeout)
            return
        wait_for_drawn(self.screen, self.size, timeout, self.alive)

    # -- what is on screen (tests.kiosk_probe) ------------------------------------------

    def ask(self, timeout: float = 20) -> dict:
        """What the app shows now: its screen, modes, buttons, labels, texts
        (tests.kiosk_probe.describe)."""
        assert self.probe_dir is not None, "this kiosk runs without the probe"
        answer, question = self.probe_dir / "answer.json", self.probe_dir / "ask"
        answer.unlink(missing_ok=True)
        question.touch()
        deadline = time.monotonic() + timeout
        while question.exists() or not answer.exists():  # the probe takes the question last
            assert self.alive(), f"kiosk exited ({self.process.returncode}):\n{self.log}"
            assert time.monotonic() < deadline, f"the probe did not answer\n{self.log}"
            time.sleep(0.02)
        return json.loads(answer.read_text(encoding="utf-8"))

    def until(self, condition: Callable[[dict], bool], what: str, timeout: float = 20) -> dict:
        """Ask until the app's state meets ``condition``."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.ask()
            if condition(state):
                return state
            assert time.monotonic() < deadline, f"not {what} within {timeout}s: {state}\n{self.log}"
            time.sleep(0.05)

    def settled(self, timeout: float = 20) -> dict:
        """The state once the layout stands still (Kivy lays out a frame after a change)."""
        deadline, last = time.monotonic() + timeout, None
        while True:
            state = self.ask()
            if last is not None and state == last:
                return state
            assert time.monotonic() < deadline, f"the layout never settled\n{self.log}"
            last = state
            time.sleep(0.1)

    def caught_up(self) -> dict:
        """The state once every key and tap sent so far is handled: the app takes
        input between two turns of the probe, so the second answer comes after it."""
        self.ask()
        return self.ask()

    def picture(self, settle: bool = True) -> Image.Image:
        """A screenshot of the state once it stands still (drawn, not half laid out);
        with ``settle=False`` of the state now, drawn (for a screen with a running
        time limit, whose countdown never stands still)."""
        if settle:
            self.settled()
        else:
            self.caught_up()
        return self.screen.screenshot()

    def on(self, screen_name: str, timeout: float = 20) -> dict:
        """Until the app shows the screen named ``screen_name`` ("home", "ticket", ...)."""
        return self.until(lambda s: s["screen"] == screen_name, f"on {screen_name}", timeout)

    def done_live(self, timeout: float = 20) -> dict:
        """Until the ticket screen's Done takes a tap (after the double-tap grace)."""
        return self.until(
            lambda s: s["screen"] == "ticket" and s["done_enabled"], "Done taking a tap", timeout
        )

    def press_done(self, timeout: float = 20, keys: tuple[str, ...] = ("Return",)) -> dict:
        """Enter as "Done" once it is live, then the home screen for the next customer
        (unless the ticket's time ran out first and the kiosk went home by itself)."""
        state = self.until(
            lambda s: s["screen"] == "home" or (s["screen"] == "ticket" and s["done_enabled"]),
            "Done taking a tap",
            timeout,
        )
        if state["screen"] == "ticket":
            self.screen.key(*keys)
        return self.on("home", timeout)

    def button(self, state: dict, text: str, kind: str = "") -> dict:
        found = [
            b for b in state["buttons"] if b["text"] == text and (not kind or b["class"] == kind)
        ]
        assert found, f"no button {text!r} on {state['screen']}: {state['buttons']}"
        return found[0]

    def label(self, state: dict, text: str) -> dict:
        found = [label for label in state["labels"] if label["text"] == text]
        assert found, f"no label {text!r}: {[label['text'] for label in state['labels']]}"
        return found[0]

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
        self._remove_probe_dir()

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._remove_probe_dir()

    def _remove_probe_dir(self) -> None:
        if self._own_probe_dir and self.probe_dir is not None:
            shutil.rmtree(self.probe_dir, ignore_errors=True)


class ProbedKiosk(Kiosk):
    """The real kiosk on the 7" Pi screen's 800x480, its state in ``tmp_path/state``."""

    def __init__(
        self, screen, tmp_path: Path, config: Path, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(screen, tmp_path / "state", config, size=PI_SCREEN, env=env)


def centre(box: dict) -> tuple[int, int]:
    """Where to tap a button or label the probe described."""
    return int(box["x"] + box["width"] / 2), int(box["y"] + box["height"] / 2)


def wait_for_drawn(
    screen: VirtualScreen,
    size: tuple[int, int] = SCREEN,
    timeout: float = 30,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Until the window's area of the (black) screen shows a drawn frame."""
    deadline = time.monotonic() + timeout
    while not screen.screenshot().crop((0, 0, *size)).convert("L").getbbox():
        assert alive(), "the kiosk exited before drawing"
        assert time.monotonic() < deadline, f"nothing drawn within {timeout}s"
        time.sleep(0.05)


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
            kiosk.done_live()  # past the double-tap grace: "Done" is live
            kiosk.picture(settle=False).save(out_dir / "kiosk-ticket.png")
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
