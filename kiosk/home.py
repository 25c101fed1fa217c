"""The home screen: one large button per service, driven by touch or keys."""

from __future__ import annotations

from collections.abc import Callable

from kivy.properties import BooleanProperty, NumericProperty, StringProperty
from kivy.uix.button import Button
from kivy.uix.screenmanager import Screen

from kiosk.i18n import ENDONYMS, closed_reason, ntr, tr
from sync.tickets import Service


class ServiceButton(Button):
    prefix = StringProperty("")
    title = StringProperty("")
    detail = StringProperty("")
    is_open = BooleanProperty(True)
    focused = BooleanProperty(False)


class LanguageButton(Button):
    language = StringProperty("")
    selected = BooleanProperty(False)
    focused = BooleanProperty(False)


class HomeScreen(Screen):
    branch_name = StringProperty("")
    clock = StringProperty("")
    prompt = StringProperty("")
    notice = StringProperty("")  # printer trouble, said instead of the prompt
    columns = NumericProperty(1)
    focus_index = NumericProperty(-1)
    _shown: tuple = ()

    def show_services(
        self, services: list[Service], language: str, choose: Callable[[Service], None]
    ) -> None:
        """(Re)build the buttons; keeps the keyboard focus where it was."""
        self.prompt = (
            tr("Choose a service to get your number", language)
            if services
            else tr("Getting ready, one moment please", language)
        )
        shown = (language, tuple(services))
        if shown == self._shown:
            return  # rebuilding would drop a press in progress
        self._shown = shown
        self.columns = 1 if len(services) <= 4 else 2 if len(services) <= 10 else 3
        grid = self.ids.buttons
        grid.clear_widgets()
        for service in services:
            detail = ""
            if not service.is_open:
                state = service.availability
                detail = closed_reason(state.status, state.opens_at, language)
            elif service.waiting is not None:
                detail = ntr("{count} waiting", "{count} waiting", service.waiting, language)
            button = ServiceButton(
                prefix=service.prefix,
                title=_displayable(service.name(language)),
                detail=detail,
                is_open=service.is_open,
                disabled=not service.is_open,
            )
            button.bind(on_release=lambda _b, s=service: choose(s))
            grid.add_widget(button)
        self._paint_focus()

    def show_languages(
        self, languages: tuple[str, ...], current: str, choose: Callable[[str], None]
    ) -> None:
        """One button per language, in its own name; none when there is one."""
        box = self.ids.languages
        if len(box.children) != len(languages) or len(languages) < 2:
            box.clear_widgets()
            if len(languages) < 2:
                return
            for language in languages:
                button = LanguageButton(language=language, text=ENDONYMS[language])
                button.bind(on_release=lambda b: choose(b.language))
                box.add_widget(button)
        for button in box.children:
            button.selected = button.language == current
        self._paint_focus()

    @property
    def service_buttons(self) -> list[ServiceButton]:
        return list(reversed(self.ids.buttons.children))  # Kivy keeps children last-first

    @property
    def language_buttons(self) -> list[LanguageButton]:
        return list(reversed(self.ids.languages.children))

    @property
    def mode_buttons(self) -> list:
        return list(reversed(self.ids.modes.children))

    @property
    def focus_ring(self) -> list[Button]:
        """What Tab and the arrows visit: the services first (what most come
        for), then the language buttons, so a keypad user can change language,
        then the large text and high contrast switches."""
        return [*self.service_buttons, *self.language_buttons, *self.mode_buttons]

    def move_focus(self, step: int) -> None:
        ring = self.focus_ring
        if not ring:
            return
        self.focus_index = (
            (0 if step > 0 else len(ring) - 1)
            if self.focus_index < 0
            else (self.focus_index + step) % len(ring)
        )
        self._paint_focus()

    def clear_focus(self) -> None:
        self.focus_index = -1
        self._paint_focus()

    def activate(self, index: int | None = None) -> bool:
        """Press the Nth service (a digit key) or the focused button, as a tap would."""
        if index is None:
            ring = self.focus_ring
            button = ring[self.focus_index] if 0 <= self.focus_index < len(ring) else None
        else:
            services = self.service_buttons
            button = services[index] if 0 <= index < len(services) else None
        if button is None or button.disabled:
            return False
        button.dispatch("on_release")
        return True

    def _paint_focus(self) -> None:
        for index, button in enumerate(self.focus_ring):
            button.focused = index == self.focus_index


def _displayable(text: str) -> str:
    """Drop control characters; the label wraps and shortens the rest."""
    return "".join(ch for ch in text if ch.isprintable()).strip()
