"""The kiosk's own words (screen and paper) in the languages it speaks.

Service names and ticket texts come from config; these are the fixed phrases
around them. English is the fallback for a phrase missing in a language.
"""

from __future__ import annotations

LANGUAGES = ("en", "fi", "sv", "et")

#: Languages that write 13.00 where English writes 13:00.
DOTTED_TIME = frozenset({"fi", "sv", "et"})

#: Each language's name in itself, for the language buttons.
ENDONYMS = {"en": "English", "fi": "Suomi", "sv": "Svenska", "et": "Eesti"}

_PHRASES: dict[str, dict[str, str]] = {
    "choose": {
        "en": "Choose a service to get your number",
        "fi": "Valitse palvelu ja ota vuoronumero",
        "sv": "Välj tjänst och ta ett könummer",
        "et": "Valige teenus ja võtke järjekorranumber",
    },
    "getting_ready": {
        "en": "Getting ready, one moment please",
        "fi": "Valmistellaan, hetki vain",
        "sv": "Förbereder, ett ögonblick",
        "et": "Valmistume, üks hetk",
    },
    "waiting": {
        "en": "{count} waiting",
        "fi": "{count} jonossa",
        "sv": "{count} väntar",
        "et": "{count} ootel",
    },
    "ahead": {
        "en": "{count} waiting before you",
        "fi": "Edelläsi jonossa {count}",
        "sv": "{count} före dig i kön",
        "et": "Teie ees järjekorras {count}",
    },
    "about_wait": {
        "en": "about {minutes} min",
        "fi": "noin {minutes} min",
        "sv": "cirka {minutes} min",
        "et": "umbes {minutes} min",
    },
    "closed": {
        "en": "Closed",
        "fi": "Suljettu",
        "sv": "Stängd",
        "et": "Suletud",
    },
    "opens_at": {
        "en": "Opens at {time}",
        "fi": "Avautuu klo {time}",
        "sv": "Öppnar kl. {time}",
        "et": "Avatakse kell {time}",
    },
    "closed_today": {
        "en": "Closed today",
        "fi": "Suljettu tänään",
        "sv": "Stängt i dag",
        "et": "Täna suletud",
    },
    "no_more_today": {
        "en": "No more tickets today",
        "fi": "Ei enää vuoronumeroita tänään",
        "sv": "Inga fler kölappar i dag",
        "et": "Täna rohkem pileteid ei anta",
    },
    "out_of_order": {
        "en": "Out of order. Please ask the staff for a number.",
        "fi": "Epäkunnossa. Pyydä vuoronumero henkilökunnalta.",
        "sv": "Ur funktion. Be personalen om ett könummer.",
        "et": "Rikkis. Palun küsige järjekorranumbrit töötajalt.",
    },
    "out_of_order_storage": {
        "en": "Out of order: the kiosk's storage is full. Please ask the staff for a number.",
        "fi": "Epäkunnossa: laitteen muisti on täynnä. Pyydä vuoronumero henkilökunnalta.",
        "sv": "Ur funktion: enhetens minne är fullt. Be personalen om ett könummer.",
        "et": "Rikkis: seadme mälu on täis. Palun küsige järjekorranumbrit töötajalt.",
    },
    "not_set_up": {
        "en": "This kiosk is not set up yet. Please ask the staff for a number.",
        "fi": "Laitetta ei ole vielä otettu käyttöön. Pyydä vuoronumero henkilökunnalta.",
        "sv": "Automaten är inte i bruk ännu. Be personalen om ett könummer.",
        "et": "Seade pole veel kasutusel. Palun küsige järjekorranumbrit töötajalt.",
    },
    "printing": {
        "en": "Printing your ticket…",
        "fi": "Tulostetaan vuoronumeroa…",
        "sv": "Din kölapp skrivs ut…",
        "et": "Teie piletit prinditakse…",
    },
    "take_ticket": {
        "en": "Please take your ticket",
        "fi": "Ota vuoronumerosi",
        "sv": "Ta din kölapp",
        "et": "Palun võtke oma pilet",
    },
    "print_failed": {
        "en": "The printer could not print. Please take a photo of this screen or scan the code.",
        "fi": "Tulostus epäonnistui. Ota kuva näytöstä tai lue koodi puhelimella.",
        "sv": "Utskriften misslyckades. Fotografera skärmen eller skanna koden.",
        "et": "Printimine ebaõnnestus. Pildistage ekraani või skannige kood.",
    },
    "scan_hint": {
        "en": "Scan to follow your turn on your phone",
        "fi": "Seuraa vuoroasi puhelimella",
        "sv": "Följ din tur i telefonen",
        "et": "Jälgige oma järjekorda telefonis",
    },
    "no_paper": {
        "en": "The printer is out of paper: your number will be shown on the screen",
        "fi": "Tulostimesta on paperi lopussa: vuoronumerosi näytetään näytöllä",
        "sv": "Skrivaren har slut på papper: ditt nummer visas på skärmen",
        "et": "Printeris on paber otsas: teie number kuvatakse ekraanil",
    },
    "no_printer": {
        "en": "The printer is not working: your number will be shown on the screen",
        "fi": "Tulostin ei toimi: vuoronumerosi näytetään näytöllä",
        "sv": "Skrivaren fungerar inte: ditt nummer visas på skärmen",
        "et": "Printer ei tööta: teie number kuvatakse ekraanil",
    },
    "copy": {
        "en": "COPY",
        "fi": "KOPIO",
        "sv": "KOPIA",
        "et": "KOOPIA",
    },
    "done": {
        "en": "Done",
        "fi": "Valmis",
        "sv": "Klar",
        "et": "Valmis",
    },
    "slow_down": {
        "en": "One moment, please",
        "fi": "Hetki, ole hyvä",
        "sv": "Ett ögonblick",
        "et": "Üks hetk, palun",
    },
    "unavailable": {
        "en": "Sorry, no ticket could be issued. Please ask the staff.",
        "fi": "Vuoronumeroa ei voitu antaa. Kysy henkilökunnalta.",
        "sv": "Ingen kölapp kunde ges. Fråga personalen.",
        "et": "Piletit ei saanud väljastada. Palun pöörduge töötaja poole.",
    },
    "large_text": {
        "en": "Large text",
        "fi": "Iso teksti",
        "sv": "Stor text",
        "et": "Suur kiri",
    },
    "high_contrast": {
        "en": "High contrast",
        "fi": "Suuri kontrasti",
        "sv": "Hög kontrast",
        "et": "Suur kontrast",
    },
    "more_time": {
        "en": "Need more time? Tap here",
        "fi": "Tarvitsetko lisää aikaa? Napauta tästä",
        "sv": "Behöver du mer tid? Tryck här",
        "et": "Vajate rohkem aega? Puudutage siin",
    },
    "more_time_key": {
        "en": "or press any key",
        "fi": "tai paina mitä tahansa näppäintä",
        "sv": "eller tryck på valfri tangent",
        "et": "või vajutage suvalist klahvi",
    },
}


def tr(key: str, language: str, **values: object) -> str:
    """The phrase ``key`` in ``language`` (English if missing), formatted."""
    phrases = _PHRASES[key]
    return phrases.get(language, phrases["en"]).format(**values)


#: Why a service takes no ticket (sync.schedule.Availability.status) → phrase.
_CLOSED_PHRASES = {
    "closed": "closed",
    "later": "opens_at",
    "closed_today": "closed_today",
    "done_today": "no_more_today",
    "full": "no_more_today",
}


def closed_reason(status: str, opens_at: str | None, language: str) -> str:
    """ "Opens at 13:00", "No more tickets today", …: what a closed button says."""
    time = (opens_at or "").replace(":", "." if language in DOTTED_TIME else ":")
    return tr(_CLOSED_PHRASES.get(status, "closed"), language, time=time)
