"""The ticket page alerts its holder, whose phone is in a pocket: in real
headless Chromium against the real server, a ticket of a real queue is made
near by calling the tickets ahead of it at a counter, then called, recalled and
served. Vibration and sound cannot be felt or heard here: an init script
records each ``navigator.vibrate`` pattern and each oscillator started (and
still calls the real ones), across reloads of the page."""

from __future__ import annotations

import base64
import io
from datetime import datetime

import requests
from axe_playwright_python.sync_playwright import Axe
from PIL import Image

from server.app import ALERT_NEAR_AHEAD
from server.counter import Counter
from server.staff import Staff
from sync import protocol, state, tickets
from tests.server_data import batch, paired, ticket, today
from tests.server_process import sync_once
from tests.test_accessibility import WCAG_AA, sticking_out

SERVER_DATABASES = ("sqlite",)  # the page's alerts do not depend on the server's database

#: Records what the page asks of the vibrator and the speaker, in the tab's
#: sessionStorage so a reload keeps it; lets the test hide the tab (headless
#: Chromium's tabs are never hidden).
RECORDER = """
(() => {
  const log = JSON.parse(sessionStorage.getItem("__alerts") || '{"vibrations":[],"tones":[]}');
  const keep = () => sessionStorage.setItem("__alerts", JSON.stringify(log));
  const vibrate = Navigator.prototype.vibrate;
  Object.defineProperty(navigator, "vibrate", { configurable: true, value(pattern) {
    log.vibrations.push(pattern); keep();
    return vibrate ? vibrate.call(navigator, pattern) : false;
  }});
  window.__contexts = [];
  const Real = window.AudioContext;
  if (Real) {
    const create = Real.prototype.createOscillator;
    Real.prototype.createOscillator = function () {
      const tone = create.call(this);
      const start = tone.start;
      tone.start = function (...args) {
        log.tones.push([this.type, this.frequency.value]); keep();
        return start.apply(this, args);
      };
      return tone;
    };
    window.AudioContext = class extends Real {
      constructor(...args) { super(...args); window.__contexts.push(this); }
    };
  }
  let hidden = false;
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(Document.prototype, "visibilityState",
    { configurable: true, get: () => (hidden ? "hidden" : "visible") });
  window.__hide = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""

TOGGLE = "Hälytä äänellä ja värinällä"
NEAR = [200, 100, 200]
CALL = [600, 200, 600, 200, 600]
RECALL = [150, 80, 150, 80, 150, 400, 150, 80, 150, 80, 150]
NEAR_TONES = [["sine", 659], ["sine", 880]]
CALL_TONES = [["triangle", f] for f in (523, 659, 784, 1047)] * 2
RECALL_TONES = [["triangle", f] for f in (988, 740)] * 3
BLUE, AMBER, GREEN, GREY = (13, 74, 143), (255, 176, 0), (27, 110, 43), (90, 103, 117)


def recorded(page) -> dict:
    return page.evaluate("JSON.parse(sessionStorage.getItem('__alerts'))")


def favicon(page, path) -> tuple[int, int, int]:
    """The tab's icon, a PNG drawn by the page, written to ``path``; its badge's colour."""
    href = page.locator("link#favicon").get_attribute("href")
    assert href.startswith("data:image/png;base64,"), href[:40]
    png = base64.b64decode(href.split(",", 1)[1])
    path.write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (64, 64)
    return max(image.getcolors(64 * 64))[1]  # the commonest colour: the badge's


def wait_title(page, title: str) -> None:
    page.wait_for_function("t => document.title === t", arg=title, timeout=20000)


def axe_clean(page, shot=None) -> str:
    """axe-core at the page's width and again with the text at 200 % (a
    screenshot of that to ``shot``)."""
    found = []
    for size in ("100%", "200%"):
        page.evaluate(
            "s => document.documentElement.style.setProperty('font-size', s, 'important')", size
        )
        result = Axe().run(page, options=WCAG_AA)
        if result.violations_count:
            found.append(f"at {size}: {result.generate_report()}")
        if size == "200%" and shot is not None:
            page.screenshot(path=str(shot), full_page=True)
        wide = page.evaluate("document.documentElement.scrollWidth")
        if wide > 360:
            found.append(f"at {size} it scrolls sideways: {sticking_out(page)}")
    page.evaluate("document.documentElement.style.removeProperty('font-size')")
    return "\n".join(found)


def test_the_page_alerts_as_the_turn_nears_when_called_and_again_when_recalled(
    browser, own_branch, tmp_path, shots
):
    server, kiosk_dir = own_branch.server, own_branch.kiosk_dir
    db = state.connect(kiosk_dir / "state.db")
    issued = [tickets.issue_ticket(db, "payments", language="fi") for _ in range(6)]
    for each in issued:
        tickets.mark_printed(db, each.id)
    db.close()
    sync_once(kiosk_dir)
    mine = issued[-1]  # five ahead of it
    assert ALERT_NEAR_AHEAD == 3, "the steps below count on three ahead being near"
    api = f"{server.url}/api/v1/tickets/{mine.public_token}"
    staff = Staff(server.storage)
    name = own_branch.name("anna")
    staff.add(own_branch.id, name, "correct horse battery", "3", ["payments"])
    anna = staff.session(staff.log_in(name, "correct horse battery", "127.0.0.1"))
    counter = Counter(server.storage)

    def next_customer(number: str) -> None:
        counter.act(anna, "served")  # the one at the counter, if any
        assert counter.act(anna, "call") == f"{number} called"

    phone = browser.new_context(viewport={"width": 360, "height": 740})
    phone.add_init_script(RECORDER)
    page = phone.new_page()
    page.goto(f"{server.url}/t/{mine.public_token}")
    own_title = page.title()
    assert own_title == f"{mine.display} · Vuoro demo branch"
    page.locator("link#favicon").wait_for(state="attached")  # the first update came
    assert favicon(page, tmp_path / "waiting.png") == BLUE
    assert page.locator("#alert").is_hidden()

    # the switch: its tap lets the page play sound (a confirming note) and vibrate
    page.get_by_label(TOGGLE).check()
    page.wait_for_function("window.__contexts.some(c => c.state === 'running')")
    assert recorded(page) == {"vibrations": [80], "tones": [["sine", 880]]}

    next_customer("A001")  # four ahead: not near yet
    page.locator("#position").get_by_text("5").wait_for(timeout=20000)
    assert page.title() == own_title
    next_customer("A002")  # three ahead: near
    wait_title(page, f"Pian: {mine.display} – 3 edelläsi")
    assert favicon(page, tmp_path / "near.png") == AMBER
    assert page.locator("#alert").inner_text() == "Vuorosi on pian"
    assert recorded(page) == {"vibrations": [80, NEAR], "tones": [["sine", 880], *NEAR_TONES]}
    next_customer("A003")  # two ahead: the title follows, no second alert
    wait_title(page, f"Pian: {mine.display} – 2 edelläsi")
    assert recorded(page)["vibrations"] == [80, NEAR]

    page.reload()  # a reload remembers the alert was given
    wait_title(page, f"Pian: {mine.display} – 2 edelläsi")
    assert favicon(page, tmp_path / "near-again.png") == AMBER
    assert recorded(page) == {"vibrations": [80, NEAR], "tones": [["sine", 880], *NEAR_TONES]}
    assert page.get_by_label(TOGGLE).is_checked(), "the switch is remembered"
    page.locator("h1.number").click()  # any tap lets sound play again after a reload
    page.wait_for_function("window.__contexts.some(c => c.state === 'running')")
    page.screenshot(path=str(shots / "ticket-alert-near.png"))
    problems = {"near": axe_clean(page)}

    next_customer("A004")
    next_customer("A005")
    wait_title(page, f"Pian: {mine.display} – olet seuraava")
    next_customer(mine.display)
    wait_title(page, f"{mine.display} → palvelupiste 3")
    assert favicon(page, tmp_path / "called.png") == GREEN
    assert page.locator("#alert").inner_text() == "Nyt on vuorosi!"
    assert page.locator("#status").inner_text() == "Tule palvelupisteeseen 3"
    assert page.get_by_label(TOGGLE).is_visible()
    log = recorded(page)
    assert log["vibrations"] == [80, NEAR, CALL]
    assert log["tones"] == [["sine", 880], *NEAR_TONES, *CALL_TONES]
    first_call = requests.get(api, timeout=5).json()["called_at"]
    assert first_call, "the public ticket says when it was called"
    page.screenshot(path=str(shots / "ticket-alert-called.png"))
    problems["called"] = axe_clean(page, shots / "ticket-alert-called-200.png")

    # a hidden tab alternates its title; a shown one keeps it steady
    page.evaluate("__hide(true)")
    wait_title(page, "Nyt on vuorosi!")
    wait_title(page, f"{mine.display} → palvelupiste 3")
    page.evaluate("__hide(false)")
    assert page.title() == f"{mine.display} → palvelupiste 3"
    assert page.evaluate("getComputedStyle(document.querySelector('main')).animationName") == (
        "calling"
    )  # a pulsing page (not for those who ask for less motion: below)

    assert counter.act(anna, "recall") == f"{mine.display}: recall"
    wait_title(page, f"Uudelleen: {mine.display} → palvelupiste 3")
    assert page.locator("#alert").inner_text() == "Sinua kutsutaan uudelleen"
    assert favicon(page, tmp_path / "recalled.png") == GREEN
    log = recorded(page)
    assert log["vibrations"] == [80, NEAR, CALL, RECALL]
    assert log["tones"] == [["sine", 880], *NEAR_TONES, *CALL_TONES, *RECALL_TONES]
    recall = requests.get(api, timeout=5).json()
    assert recall["status"] == "called" and recall["called_at"] > first_call
    page.screenshot(path=str(shots / "ticket-alert-recalled.png"))

    assert counter.act(anna, "served") == f"{mine.display}: served"
    page.locator("form.feedback").wait_for(timeout=20000)  # the page reloaded itself
    assert page.title() == own_title
    assert favicon(page, tmp_path / "served.png") == GREY
    assert page.locator("#alerts-box").is_hidden() and page.locator("#alert").is_hidden()
    assert recorded(page) == log, "nothing alerts once served"
    assert page.evaluate(f"localStorage.getItem('vuoro.alerts.{mine.public_token}')") is None
    assert requests.get(api, timeout=5).json()["called_at"] is None
    failing = {k: v for k, v in problems.items() if v}
    assert not failing, "\n\n".join(f"== {k}\n{v}" for k, v in failing.items())


def test_a_transferred_ticket_s_next_call_is_a_first_call_and_junk_in_storage_harms_nothing(
    browser, own_branch
):
    """What the phone kept may be anything (another version's, a hand-edited
    one): the page alerts as if nothing was kept. A ticket staff move to
    another queue is waiting again: its next call is a call, not a recall."""
    server, kiosk_dir = own_branch.server, own_branch.kiosk_dir
    db = state.connect(kiosk_dir / "state.db")
    mine = tickets.issue_ticket(db, "payments", language="fi")
    tickets.mark_printed(db, mine.id)
    db.close()
    sync_once(kiosk_dir)
    staff = Staff(server.storage)
    name = own_branch.name("ville")
    staff.add(own_branch.id, name, "correct horse battery", "5", ["payments", "permits"])
    ville = staff.session(staff.log_in(name, "correct horse battery", "127.0.0.1"))
    counter = Counter(server.storage)

    phone = browser.new_context(viewport={"width": 360, "height": 740}, reduced_motion="reduce")
    phone.add_init_script(RECORDER)
    key = f"vuoro.alerts.{mine.public_token}"
    junk = ['{"near": [', "null", '"x"', '{"call": {"a": 1}, "at": "soon"}', "\u0000" * 5000]
    page = phone.new_page()
    page.goto(f"{server.url}/t/{mine.public_token}?lang=en")
    title = page.title()
    for value in junk:
        page.evaluate(
            "([k, v]) => [k, 'vuoro.alerts.sound'].forEach(at => localStorage.setItem(at, v))",
            [key, value],
        )
        page.reload()
        # alone in the queue: near at once, shown (no sound: the switch is off)
        wait_title(page, f"Soon: {mine.display} – you are next")
        assert page.get_by_label("Alert me with sound and vibration").is_visible()
        assert not page.get_by_label("Alert me with sound and vibration").is_checked()
    page.get_by_label("Alert me with sound and vibration").check()

    assert counter.act(ville, "call") == f"{mine.display} called"
    wait_title(page, f"{mine.display} → counter 5")
    assert page.locator("#alert").inner_text() == "It's your turn!"
    assert counter.act(ville, "transfer", "permits") == f"{mine.display} moved to permits"
    page.locator(".service").get_by_text("Permits and licences").wait_for(timeout=20000)
    wait_title(page, f"Soon: {mine.display} – you are next")
    assert counter.act(ville, "call") == f"{mine.display} called"
    wait_title(page, f"{mine.display} → counter 5")
    assert page.locator("#alert").inner_text() == "It's your turn!"
    assert recorded(page)["vibrations"] == [80, CALL, CALL], "two first calls, no recall"
    page.get_by_label("Alert me with sound and vibration").uncheck()
    assert counter.act(ville, "recall") == f"{mine.display}: recall"
    wait_title(page, f"Called again: {mine.display} → counter 5")
    assert recorded(page)["vibrations"] == [80, CALL, CALL], "switched off: silent"
    assert title != page.title()

    # this phone asks for less motion: a hidden tab's title stays steady (on the
    # browser's clock, a fake one here, moved by hand), the page does not pulse
    recalled = f"Called again: {mine.display} → counter 5"
    page.clock.install()
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    page.evaluate("__hide(true)")
    page.clock.run_for(5000)
    assert page.title() == recalled
    assert page.evaluate("getComputedStyle(document.querySelector('main')).animationName") == (
        "none"
    )


def test_the_ticket_says_when_it_was_last_called_and_a_recall_moves_it(storage):
    """The storage read behind the public ticket, on each database: the time of
    the latest call (a recall moves it), none before the first call nor once
    staff move the ticket to another queue."""
    kiosk = paired(storage)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=5))
    storage.ingest(kiosk, batch(ticket(1, day=day)))
    token = "token-" + f"{1:016d}"
    assert storage.ticket_by_token(token)["called_at"] is None
    staff = Staff(storage)
    staff.add("demo", "anna", "correct horse battery", "3", ["payments", "permits"])
    anna = staff.session(staff.log_in("anna", "correct horse battery", "127.0.0.1"))
    counter = Counter(storage)
    assert counter.act(anna, "call") == "A001 called"
    first = storage.ticket_by_token(token)["called_at"]
    assert datetime.fromisoformat(first).tzinfo is not None
    assert counter.act(anna, "recall") == "A001: recall"
    again = storage.ticket_by_token(token)["called_at"]
    assert datetime.fromisoformat(again) > datetime.fromisoformat(first)
    protocol.PublicTicket(
        number="A001",
        service="x",
        status="called",
        position=None,
        estimated_wait_s=None,
        counter="3",
        called_at=again,
    )  # the protocol's shape takes the stored form
    assert counter.act(anna, "transfer", "permits") == "A001 moved to permits"
    assert storage.ticket_by_token(token)["called_at"] is None
