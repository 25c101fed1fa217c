"""Phone numbers a customer types for a call-back: checked and written the one
way (E.164, "+358401234567") with Google's libphonenumber rules
(``phonenumbers``), so staff dial what was meant and reports count one
customer once however they typed it.

A number without a country code is read in the branch's country. Only
numbers that ring a person are taken: mobile or fixed line, never premium,
shared-cost, toll-free, short or emergency codes (a call-back to those costs
the branch money or reaches nobody). The reasons for a refusal are keys of
:data:`REFUSALS`, whose texts the public page shows in the customer's language.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from catalogue import N_

#: what a typed number may hold: ASCII digits and the usual separators. Anything
#: else (letters, digits of other scripts, which libphonenumber would quietly
#: turn into ASCII ones, control characters) is refused before parsing.
ALLOWED = frozenset("0123456789+-()./ \u00a0")
#: characters a typed number may have, separators included
TYPED_MAX = 32
#: the numbers called back: those that ring a person
CALLABLE = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
#: why a number is refused → what the customer reads (translated by the page)
REFUSALS = {
    "missing": N_("Write the phone number we should call."),
    "characters": N_("A phone number has only digits, spaces and + - ( ) characters."),
    "too_short": N_(
        "The number is too short. Check it; a foreign number starts with + and its country code."
    ),
    "too_long": N_("The number is too long. Check it."),
    "invalid": N_(
        "That is not a phone number we can call. Check it; a foreign number starts with + "
        "and its country code."
    ),
    "kind": N_(
        "We call back mobile and landline numbers only, not service, premium or short numbers."
    ),
}


class PhoneRefused(ValueError):
    """The typed text is no number we call; ``reason`` is a key of REFUSALS."""

    def __init__(self, reason: str) -> None:
        super().__init__(REFUSALS[reason])
        self.reason = reason


def normalise(typed: str, region: str) -> str:
    """The number in E.164, read in ``region`` (ISO 3166 alpha-2) when it has
    no country code; :class:`PhoneRefused` when it is none we call back."""
    text = typed.strip()
    if not text:
        raise PhoneRefused("missing")
    if len(text) > TYPED_MAX or not set(text) <= ALLOWED or text.count("+") > 1:
        raise PhoneRefused("characters")
    if "+" in text and not text.lstrip("(").startswith("+"):
        raise PhoneRefused("characters")
    digits = sum(c.isdigit() for c in text)
    if digits < 3:
        raise PhoneRefused("too_short")
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        too = {
            NumberParseException.TOO_SHORT_NSN: "too_short",
            NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
            NumberParseException.TOO_LONG: "too_long",
        }
        raise PhoneRefused(too.get(exc.error_type, "invalid")) from None
    if phonenumbers.is_valid_short_number(number):  # 112, 116 117, a service's own code
        raise PhoneRefused("kind")
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == phonenumbers.ValidationResult.TOO_SHORT:
        raise PhoneRefused("too_short")
    if possible == phonenumbers.ValidationResult.TOO_LONG:
        raise PhoneRefused("too_long")
    if not phonenumbers.is_valid_number(number):
        raise PhoneRefused("invalid")
    if phonenumbers.number_type(number) not in CALLABLE:
        raise PhoneRefused("kind")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def shown(e164: str) -> str:
    """A stored number as staff read it ("+358 40 1234567"); as stored if it
    does not parse (a blanked one is "")."""
    try:
        return phonenumbers.format_number(
            phonenumbers.parse(e164, None), PhoneNumberFormat.INTERNATIONAL
        )
    except NumberParseException:
        return e164


def known_region(region: object) -> bool:
    """Whether ``region`` is a country code libphonenumber reads numbers in."""
    return isinstance(region, str) and region in phonenumbers.SUPPORTED_REGIONS


def example(region: str) -> str:
    """A mobile number of ``region`` as people there write it ("041 2345678"),
    for the form's hint; "" where libphonenumber has none."""
    number = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    return "" if number is None else phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
