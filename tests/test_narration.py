"""What the kiosk says: the ticket sentence (number as people say it, people
before you, the wait rounded, where to go), the choices with their digits, a
switch's state in words, in each built-in language."""

from __future__ import annotations

import pytest

from kiosk import narration
from kiosk.i18n import LANGUAGES
from sync import schedule
from sync.tickets import Category, Service

PAYMENTS = Service(
    id="payments",
    prefix="A",
    names={"en": "Payments", "fi": "Maksut", "sv": "Betalningar", "et": "Maksed"},
    texts={},
    position=0,
    waiting=3,
    estimated_wait_s=14 * 60 + 40,
    locations={"en": "Room 204, 2nd floor", "fi": "Huone 204, 2. kerros"},
)
MONEY = Category("money", {"en": "Money matters", "fi": "Raha-asiat"})


def test_the_ticket_is_said_with_the_number_people_before_the_wait_and_where_to_go():
    assert narration.ticket_words("A042", PAYMENTS, "en") == (
        "Your number is A42. Payments. 3 waiting before you. "
        "Estimated wait: about 15 minutes. Go to Room 204, 2nd floor. Please take your ticket."
    )
    finnish = narration.ticket_words("A042", PAYMENTS, "fi")
    assert finnish.startswith("Vuoronumerosi on A42. Maksut.")
    assert "noin 15 minuuttia" in finnish and "Huone 204, 2. kerros" in finnish


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_says_the_ticket_in_its_own_words(language):
    said = narration.ticket_words("B007", PAYMENTS, language)
    assert "B7" in said and "{" not in said
    if language != "en":
        assert "Your number" not in said and "Please take" not in said


def test_no_queue_known_no_location_and_a_bad_number_are_said_plainly():
    alone = Service("x", "C", {"en": "Advice"}, {}, 1, waiting=0, estimated_wait_s=0)
    assert narration.ticket_words("C001", alone, "en") == (
        "Your number is C1. Advice. no wait. Please take your ticket."
    )
    unknown = Service("x", "C", {"en": "Advice"}, {}, 1)
    assert narration.ticket_words("", unknown, "en") == "Advice. Please take your ticket."


def test_the_choices_name_each_digit_and_a_category_says_it_opens_more():
    closed = Service(
        "t", "B", {"en": "Transfers"}, {}, 1, availability=schedule.Availability("closed_today")
    )
    said = narration.choices([MONEY, closed], "", "en", speech_on=True)
    assert said.startswith("Speech is on. Press 1 for Money matters, More choices. ")
    assert "Press 2 for Transfers, Closed today." in said
    assert said.endswith("Hold 0 to switch speech off.")
    inside = narration.choices([PAYMENTS], "Money matters", "en")
    assert inside.startswith("Money matters. Press 1 for Payments, 3 waiting.")
    assert "Press 0 to go back" in inside


def test_a_switch_says_its_state_and_a_language_button_its_own_language():
    assert narration.mode_words("Iso teksti", True, "fi") == "Iso teksti, päällä"
    assert narration.mode_words("Large text", False, "en") == "Large text, off"
    assert narration.language_words("sv") == ("Svenska", "sv")
