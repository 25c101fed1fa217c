"""The words of the public ticket page, in the languages kiosks print in."""

from __future__ import annotations

LANGUAGES = {"en": "English", "fi": "Suomi", "sv": "Svenska", "et": "Eesti"}

_PAGE: dict[str, dict[str, str]] = {
    "your_number": {
        "en": "Your number",
        "fi": "Vuoronumerosi",
        "sv": "Ditt nummer",
        "et": "Teie number",
    },
    "waiting": {"en": "Waiting", "fi": "Odottaa", "sv": "Väntar", "et": "Ootel"},
    "called": {
        "en": "Please go to counter {counter}",
        "fi": "Tule palvelupisteeseen {counter}",
        "sv": "Gå till disk {counter}",
        "et": "Palun minge teenindusletti {counter}",
    },
    "serving": {
        "en": "Being served at counter {counter}",
        "fi": "Palvellaan palvelupisteessä {counter}",
        "sv": "Betjänas vid disk {counter}",
        "et": "Teenindatakse teenindusletis {counter}",
    },
    "served": {
        "en": "Served. Thank you!",
        "fi": "Palveltu. Kiitos!",
        "sv": "Betjänad. Tack!",
        "et": "Teenindatud. Aitäh!",
    },
    "no_show": {
        "en": "Your turn passed",
        "fi": "Vuorosi meni ohi",
        "sv": "Din tur har passerat",
        "et": "Teie järjekord läks mööda",
    },
    "cancelled": {
        "en": "You left the queue",
        "fi": "Poistuit jonosta",
        "sv": "Du lämnade kön",
        "et": "Lahkusite järjekorrast",
    },
    "void": {
        "en": "This ticket is not valid",
        "fi": "Tämä vuoronumero ei ole voimassa",
        "sv": "Den här kölappen gäller inte",
        "et": "See pilet ei kehti",
    },
    "parked": {
        "en": "The staff are checking your ticket and will add it to the queue",
        "fi": "Henkilökunta tarkistaa vuoronumerosi ja lisää sen jonoon",
        "sv": "Personalen kontrollerar din kölapp och för in den i kön",
        "et": "Töötajad kontrollivad teie piletit ja lisavad selle järjekorda",
    },
    "position": {
        "en": "Place in queue",
        "fi": "Sijasi jonossa",
        "sv": "Plats i kön",
        "et": "Koht järjekorras",
    },
    "wait": {
        "en": "Estimated wait",
        "fi": "Arvioitu odotus",
        "sv": "Beräknad väntetid",
        "et": "Eeldatav ooteaeg",
    },
    "minutes": {
        "en": "about {minutes} min",
        "fi": "noin {minutes} min",
        "sv": "cirka {minutes} min",
        "et": "umbes {minutes} min",
    },
    "now": {"en": "any moment now", "fi": "ihan kohta", "sv": "när som helst", "et": "kohe-kohe"},
    "leave": {
        "en": "I'm leaving the queue",
        "fi": "Poistun jonosta",
        "sv": "Jag lämnar kön",
        "et": "Lahkun järjekorrast",
    },
    "leave_confirm": {
        "en": "Leave the queue? Your number will no longer be called.",
        "fi": "Poistutko jonosta? Numeroasi ei enää kutsuta.",
        "sv": "Lämna kön? Ditt nummer ropas inte upp längre.",
        "et": "Lahkute järjekorrast? Teie numbrit enam ei kutsuta.",
    },
    "yes_leave": {
        "en": "Yes, leave",
        "fi": "Kyllä, poistun",
        "sv": "Ja, lämna",
        "et": "Jah, lahkun",
    },
    "stay": {"en": "No, stay", "fi": "En, jään jonoon", "sv": "Nej, stanna", "et": "Ei, jään"},
    "updated": {
        "en": "This page updates by itself.",
        "fi": "Sivu päivittyy itsestään.",
        "sv": "Sidan uppdateras av sig själv.",
        "et": "Leht uueneb ise.",
    },
    "offline": {
        "en": "No connection; trying again…",
        "fi": "Ei yhteyttä; yritetään uudelleen…",
        "sv": "Ingen anslutning; försöker igen…",
        "et": "Ühendus puudub; proovime uuesti…",
    },
    "feedback": {
        "en": "How was your visit?",
        "fi": "Millainen käyntisi oli?",
        "sv": "Hur var ditt besök?",
        "et": "Kuidas teie külastus möödus?",
    },
    "rating": {"en": "{n} of 5", "fi": "{n}/5", "sv": "{n} av 5", "et": "{n} / 5"},
    "comment": {
        "en": "Anything to add? (optional)",
        "fi": "Haluatko lisätä jotain? (vapaaehtoinen)",
        "sv": "Något att tillägga? (valfritt)",
        "et": "Midagi lisada? (vabatahtlik)",
    },
    "send": {"en": "Send", "fi": "Lähetä", "sv": "Skicka", "et": "Saada"},
    "thanks": {
        "en": "Thank you for your feedback!",
        "fi": "Kiitos palautteestasi!",
        "sv": "Tack för din respons!",
        "et": "Aitäh tagasiside eest!",
    },
    "erase": {
        "en": "Erase my comment",
        "fi": "Poista kommenttini",
        "sv": "Radera min kommentar",
        "et": "Kustuta minu kommentaar",
    },
    "language": {"en": "Language", "fi": "Kieli", "sv": "Språk", "et": "Keel"},
    "on_its_way": {
        "en": "Your ticket is on its way",
        "fi": "Vuoronumerosi on tulossa",
        "sv": "Din kölapp är på väg",
        "et": "Teie pilet on teel",
    },
    "on_its_way_text": {
        "en": "The kiosk has not sent it to us yet. This page refreshes by itself.",
        "fi": "Automaatti ei ole vielä lähettänyt sitä. Sivu päivittyy itsestään.",
        "sv": "Automaten har inte skickat den ännu. Sidan uppdateras av sig själv.",
        "et": "Automaat pole seda veel saatnud. Leht uueneb ise.",
    },
    "not_found": {
        "en": "No such ticket",
        "fi": "Vuoronumeroa ei löydy",
        "sv": "Ingen sådan kölapp",
        "et": "Sellist piletit pole",
    },
    "not_found_text": {
        "en": "There is no ticket at this address. Check the address on your ticket, or scan "
        "its QR code again. The staff can help.",
        "fi": "Tällä osoitteella ei ole vuoronumeroa. Tarkista lipussa oleva osoite tai skannaa "
        "sen QR-koodi uudelleen. Henkilökunta auttaa.",
        "sv": "Det finns ingen kölapp på den här adressen. Kontrollera adressen på kölappen "
        "eller skanna dess QR-kod igen. Personalen hjälper dig.",
        "et": "Sellel aadressil piletit pole. Kontrollige piletil olevat aadressi või skannige "
        "selle QR-kood uuesti. Töötajad aitavad.",
    },
}

#: The waiting-room display's words; a display shows them in each of its
#: languages in turn.
_DISPLAY: dict[str, dict[str, str]] = {
    "now_calling": {
        "en": "Now calling",
        "fi": "Vuorossa",
        "sv": "Nu betjänas",
        "et": "Järgmine",
    },
    "counter": {"en": "Counter", "fi": "Palvelupiste", "sv": "Lucka", "et": "Teenindusleti"},
    "earlier": {"en": "Called", "fi": "Kutsutut", "sv": "Uppropade", "et": "Kutsutud"},
    "waiting": {"en": "waiting", "fi": "odottaa", "sv": "väntar", "et": "ootel"},
    "wait": {
        "en": "about {minutes} min",
        "fi": "noin {minutes} min",
        "sv": "cirka {minutes} min",
        "et": "umbes {minutes} min",
    },
    "no_wait": {"en": "no wait", "fi": "ei jonoa", "sv": "ingen kö", "et": "järjekorda pole"},
    "no_calls": {
        "en": "Please take a number at the kiosk",
        "fi": "Ota vuoronumero automaatista",
        "sv": "Ta en kölapp i automaten",
        "et": "Palun võtke number automaadist",
    },
    "offline": {
        "en": "No connection since {time}: calls may be missing",
        "fi": "Ei yhteyttä klo {time} jälkeen: kutsuja voi puuttua",
        "sv": "Ingen anslutning sedan {time}: upprop kan saknas",
        "et": "Ühendus puudub alates {time}: kutseid võib puududa",
    },
    "sound_blocked": {
        "en": "Sound is blocked by the browser: tap the screen once",
        "fi": "Selain estää äänen: kosketa näyttöä kerran",
        "sv": "Webbläsaren blockerar ljudet: tryck en gång på skärmen",
        "et": "Brauser blokeerib heli: puudutage ekraani üks kord",
    },
}


def display_words(languages: list[str]) -> dict[str, dict[str, str]]:
    """The display's words in each of its languages (English where one is missing)."""
    return {
        language: {key: texts.get(language, texts["en"]) for key, texts in _DISPLAY.items()}
        for language in languages
    }


#: What a ticket's status says on its page; ``{counter}`` is the counter's name.
STATUS_WORDS = (
    "waiting",
    "called",
    "serving",
    "served",
    "no_show",
    "cancelled",
    "void",
    "parked",  # received, but no day's queue could take it: staff place it
)


def page_words(language: str) -> dict[str, str]:
    """Every phrase of the page in ``language`` (English where one is missing)."""
    return {key: texts.get(language, texts["en"]) for key, texts in _PAGE.items()}


def status_text(status: str, counter: str | None, words: dict[str, str]) -> str:
    """The status in words, never the raw key (every status has words: tests check)."""
    return words.get(status, "").replace("{counter}", counter or "")


def pick_language(wanted: str | None, ticket_language: str | None, offered: list[str]) -> str:
    for language in (wanted, ticket_language, *offered, "en"):
        if language in LANGUAGES:
            return language
    return "en"


def accepted_language(header: str | None) -> str | None:
    """The browser's most wanted language we speak (``Accept-Language``), if any.

    For a page that has no ticket to take the language from: a visitor whose
    phone is set to Finnish reads Finnish.
    """
    ranked = []
    for order, part in enumerate((header or "")[:500].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = tag.strip().split("-")[0].lower()
        if language in LANGUAGES and quality > 0:
            ranked.append((-quality, order, language))
    return min(ranked)[2] if ranked else None
