"""Speech in the real app, for a customer who cannot see the screen: switched
on by holding 0, the choices, the focused button (a language button in its
own language), the volume keys, the tree's level, the issued ticket and the
"need more time?" warning, each a real espeak-ng recording played through
aplay's ``null`` device and kept (``VUORO_SPEECH_RECORD``) as WAV, text and
JSON; a blind customer's way from home to a printed ticket by keys alone; and
speech back to its defaults for the next customer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kiosk.spoken import spoken_ticket_number
from speech import audio
from tests.kiosk_driver import ProbedKiosk
from tests.test_kiosk_tree_ui import tree_config

pytestmark = pytest.mark.ui

MIN_RMS = 300  # int16 samples: speech, not silence (espeak-ng's voice is in the thousands)


def finnish_tree() -> str:
    return (
        tree_config()
        .replace('language = "en"', 'language = "fi"')
        .replace('languages = ["en", "fi"]', 'languages = ["fi", "en"]')
        .replace("return_home_s = 30", "return_home_s = 9")
        .replace("warn_before_s = 2", "warn_before_s = 3")
    )


class Recordings:
    """The kiosk's spoken utterances, as ``kiosk.voice.Voice`` records them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def all(self) -> list[dict]:
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                facts = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError):
                continue  # being replaced
            facts["serial"] = int(path.name.split("-")[0])
            facts["wav"] = path.with_suffix(".wav")
            facts["txt"] = path.with_suffix(".txt")
            found.append(facts)
        return found

    def wait(self, condition: Callable[[dict], bool], what: str, kiosk, timeout=60) -> dict:
        """The first recording meeting ``condition`` whose WAV and text are written."""
        deadline = time.monotonic() + timeout
        while True:
            for facts in self.all():
                if condition(facts) and facts["wav"].exists() and facts["txt"].exists():
                    return facts
            assert kiosk.alive(), kiosk.log
            assert time.monotonic() < deadline, (
                f"nothing said: {what} within {timeout}s: {[r['text'] for r in self.all()]}"
                f"\n{kiosk.log}"
            )
            time.sleep(0.05)


class SpeakingKiosk(ProbedKiosk):
    """The probed kiosk that keeps what it says in ``record``."""

    def __init__(
        self, screen, tmp_path: Path, config: Path, record: Path, env: dict | None = None
    ) -> None:
        super().__init__(
            screen, tmp_path, config, env={"VUORO_SPEECH_RECORD": str(record)} | (env or {})
        )


def loudness(recording: dict) -> float:
    return audio.rms(audio.samples_of_wav(recording["wav"].read_bytes()))


def hold_zero(screen, kiosk, times: int) -> None:
    """Hold 0 until the kiosk says speech switched (no fixed wait), then let go."""
    screen.xdotool("mousemove", "400", "5")
    screen.xdotool("keydown", "0")
    try:
        kiosk.wait_for_log("speech on", times=times)
    finally:
        screen.xdotool("keyup", "0")


def test_a_blind_customer_switches_speech_on_and_gets_a_printed_ticket_by_keys_alone(
    screen, write_config, tmp_path
):
    record = tmp_path / "spoken"
    said = Recordings(record)
    kiosk = SpeakingKiosk(screen, tmp_path, write_config(finnish_tree()), record)
    try:
        kiosk.until(lambda s: s["screen"] == "home" and s["buttons"], "home")
        assert said.all() == [], "speech is off until asked for"

        # holding 0: speech on, it says so and reads the choices, in Finnish
        hold_zero(screen, kiosk, times=1)
        choices = said.wait(lambda r: "Puhe on päällä" in r["text"], "speech on", kiosk)
        assert "Paina 1" in choices["text"] and "Raha-asiat" in choices["text"]
        assert "Paina 2" in choices["text"] and "Neuvonta" in choices["text"]
        assert choices["language"] == "fi" and "|fi|" in choices["voice"]
        assert choices["device"] == "null"
        assert loudness(choices) > MIN_RMS

        # the focused item, after an arrow key
        screen.key("Right")
        focused = said.wait(lambda r: r["text"].startswith("Raha-asiat"), "the focus", kiosk)
        assert "Lisää vaihtoehtoja" in focused["text"], "a category says it opens more"
        assert focused["language"] == "fi" and loudness(focused) > MIN_RMS
        assert focused["txt"].read_text("utf-8").strip() == focused["text"]

        # a language button is said in its own language
        screen.key("Tab", "Tab", "Tab")  # Neuvonta, Suomi, English
        english = said.wait(lambda r: r["text"] == "English", "the English button", kiosk)
        assert english["language"] == "en" and "|en" in english["voice"]

        # louder, by PageUp: said at the new level
        screen.key("Prior")
        louder = said.wait(lambda r: "Äänenvoimakkuus 8" in r["text"], "the volume", kiosk)
        assert louder["volume"] == 8

        # the tree by keys: back to the category, into it, to a service, Enter
        screen.key("Left", "Left", "Left", "Return")
        level = said.wait(
            lambda r: r["text"].startswith("Raha-asiat.") and "Maksut" in r["text"],
            "the level's title and choices",
            kiosk,
        )
        assert "Paina 0" in level["text"], "how to go back"
        screen.key("Right")
        said.wait(lambda r: r["text"].startswith("Maksut"), "the service", kiosk)
        screen.key("Down")
        closed = said.wait(lambda r: r["text"].startswith("Siirrot"), "the closed one", kiosk)
        assert "Suljettu tänään" in closed["text"], "a closed service says why"
        screen.key("Up", "Return")

        # the ticket: number, service, people before, where to go, take it
        ticket = kiosk.wait_for_tickets(1, ("printed",))[0]
        assert len(kiosk.wait_for_pngs(1)) == 1, "the printer received it"
        spoken = said.wait(lambda r: "Vuoronumerosi on" in r["text"], "the ticket", kiosk)
        assert ticket["service_id"] == "payments"
        assert spoken_ticket_number(ticket["display"]) in spoken["text"]
        for words in ("Maksut", "Huone 204", "Ota vuoronumerosi"):
            assert words in spoken["text"]
        assert spoken["language"] == "fi" and loudness(spoken) > MIN_RMS

        # time to decide: the warning is said too
        said.wait(lambda r: "Tarvitsetko lisää aikaa" in r["text"], "the warning", kiosk)

        # the next customer: speech off, volume back, at the top level
        kiosk.wait_for_log("speech reset: off")
        kiosk.until(lambda s: s["screen"] == "home", "home after the ticket")
        last = max(r["serial"] for r in said.all())
        screen.key("Right")  # silent now
        hold_zero(screen, kiosk, times=2)
        again = said.wait(lambda r: r["serial"] > last, "speech on again", kiosk)
        assert again["serial"] == last + 1, "nothing was said while speech was off"
        assert "Puhe on päällä" in again["text"] and "Raha-asiat" in again["text"]
        assert again["volume"] == 7, "the default volume again"
    finally:
        kiosk.stop()
    assert "speech on" in kiosk.log


ONBOARD_CARD = " 0 [vc4hdmi0       ]: vc4-hdmi - vc4-hdmi-0\n                      vc4-hdmi-0\n"
USB_HEADSET = (
    " 1 [Headset        ]: USB-Audio - USB Headset\n"
    "                      USB Headset at usb-0000:01:00.0-1.3, full speed\n"
)


def write_cards(path: Path, text: str) -> None:
    """The kernel's card list, replaced whole as the kernel's would be."""
    path.with_suffix(".tmp").write_text(text, "utf-8")
    path.with_suffix(".tmp").replace(path)


def test_a_headset_plugged_in_switches_speech_on_and_takes_the_sound(
    screen, write_config, tmp_path
):
    """No sight needed: plugging in a USB headset (the kernel lists a USB-Audio
    card) switches speech on, says where the customer is, and plays on the
    headset; pulling it out switches speech off."""
    record = tmp_path / "spoken"
    said = Recordings(record)
    cards = tmp_path / "cards"
    write_cards(cards, ONBOARD_CARD)
    config = write_config(finnish_tree().replace('headset = "none"', 'headset = "usb"'))
    kiosk = SpeakingKiosk(screen, tmp_path, config, record, {"VUORO_ASOUND_CARDS": str(cards)})
    try:
        kiosk.until(lambda s: s["screen"] == "home" and s["buttons"], "home")
        assert said.all() == [], "speech is off until asked for"

        write_cards(cards, ONBOARD_CARD + USB_HEADSET)
        kiosk.wait_for_log("speech on (headset)")
        intro = said.wait(lambda r: "Puhe on päällä" in r["text"], "speech on", kiosk)
        assert intro["device"] == "plughw:CARD=Headset,DEV=0", "the sound goes to the headset"
        assert "Raha-asiat" in intro["text"] and loudness(intro) > MIN_RMS

        screen.key("Right")  # the focus, said on the headset too
        focused = said.wait(lambda r: r["text"].startswith("Raha-asiat"), "the focus", kiosk)
        assert focused["device"] == "plughw:CARD=Headset,DEV=0"

        write_cards(cards, ONBOARD_CARD)
        kiosk.wait_for_log("headset pulled out")
        last = max(r["serial"] for r in said.all())
        screen.key("Right")
        screen.key("Left")
        kiosk.until(lambda s: s["screen"] == "home", "home")
        hold_zero(screen, kiosk, times=2)  # the key still works without a headset
        again = said.wait(lambda r: r["serial"] > last, "speech on by key", kiosk)
        assert again["serial"] == last + 1, "nothing was said after the headset went"
        assert again["device"] == "null", "the speaker again"
    finally:
        kiosk.stop()
