"""The home screen: one large button per service (or category of the service
tree), driven by touch or keys."""

from __future__ import annotations

from collections.abc import Callable

from kivy.clock import Clock
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.screenmanager import Screen

from kiosk.i18n import ENDONYMS, closed_reason, ntr, tr
from sync.tickets import Category, Service

#: between the names of a level's title ("Money matters › Cards")
PATH_SEPARATOR = " › "


class ServiceButton(Button):
    prefix = StringProperty("")
    title = StringProperty("")
    detail = StringProperty("")
    is_open = BooleanProperty(True)
    focused = BooleanProperty(False)
    item = ObjectProperty(None, allownone=True)  # the Service (or Category) it stands for


class CategoryButton(ServiceButton):
    """A category: drawn like a service with an arrow in place of the letter, and
    says in words that it opens more choices (never colour alone)."""


class NavButton(Button):
    """ "Back" (one level up) and "Home" (the first level) inside a category."""

    action = StringProperty("")
    focused = BooleanProperty(False)


class FittedLabel(Label):
    """A label whose font shrinks, step by step down to ``min_font_size``, until
    the whole text fits its box: a long branch name on two smaller lines rather
    than cut to "City s...point" beside four language buttons."""

    max_font_size = NumericProperty(20)
    min_font_size = NumericProperty(10)

    def __init__(self, **kwargs) -> None:
        self._fit_soon = Clock.create_trigger(self._fit)
        super().__init__(**kwargs)
        self.fbind("size", self._fit_soon)
        self.fbind("text", self._fit_soon)
        self.fbind("max_font_size", self._fit_soon)

    def _fit(self, *_args) -> None:
        size = self.max_font_size
        self.text_size = (self.width, None)  # wrapped to the width, as tall as it needs
        while True:
            self.font_size = size
            self.texture_update()
            if self.texture_size[1] <= self.height or size <= self.min_font_size:
                break
            size = max(self.min_font_size, size * 0.9)
        self.text_size = self.size


class LanguageButton(Button):
    language = StringProperty("")
    selected = BooleanProperty(False)
    focused = BooleanProperty(False)


class HomeScreen(Screen):
    branch_name = StringProperty("")
    clock = StringProperty("")
    prompt = StringProperty("")
    notice = StringProperty("")  # printer trouble, said instead of the prompt
    empty = BooleanProperty(True)  # no buttons: the prompt or notice is a big sign instead
    level_title = StringProperty("")  # the open category's path; "" at the top level
    columns = NumericProperty(1)
    focus_index = NumericProperty(-1)
    _shown: tuple = ()

    def show_services(
        self,
        services: list[Service | Category],
        language: str,
        choose: Callable[[Service], None],
        open_category: Callable[[Category], None] = lambda _c: None,
        path: list[Category] = (),
        navigate: Callable[[str], None] = lambda _action: None,
    ) -> None:
        """(Re)build the buttons of one level of the tree; keeps the keyboard focus
        where it was. ``path`` is the open category's way down from the top
        (empty at the top level: no title, no Back and Home buttons)."""
        self.prompt = (
            tr("Choose a service to get your number", language)
            if services
            else tr("Getting ready, one moment please", language)
        )
        self.empty = not services
        shown = (language, tuple(services), tuple(c.id for c in path))
        if shown == self._shown:
            return  # rebuilding would drop a press in progress
        self._shown = shown
        self.level_title = PATH_SEPARATOR.join(_displayable(c.name(language)) for c in path)
        self._show_nav(bool(path), language, navigate)
        self.columns = 1 if len(services) <= 4 else 2 if len(services) <= 10 else 3
        grid = self.ids.buttons
        grid.clear_widgets()
        for item in services:
            button = _button(item, language)
            if isinstance(item, Category):
                button.bind(on_release=lambda _b, c=item: open_category(c))
            else:
                button.bind(on_release=lambda _b, s=item: choose(s))
            grid.add_widget(button)
        self._paint_focus()

    def _show_nav(self, shown: bool, language: str, navigate: Callable[[str], None]) -> None:
        """Back and Home exist only inside a category (the top level looks as it
        always did); the ring skips nothing that is not there."""
        box = self.ids.nav
        for button in self.nav_buttons:
            box.remove_widget(button)
        if not shown:
            return
        back = NavButton(action="back", text="‹  " + tr("Back", language))
        home = NavButton(action="home", text=tr("Home", language))
        for button in (back, home):
            button.bind(on_release=lambda b: navigate(b.action))
        box.add_widget(back, index=len(box.children))  # left of the title
        box.add_widget(home)  # right of it

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
    def nav_buttons(self) -> list[NavButton]:
        return [b for b in reversed(self.ids.nav.children) if isinstance(b, NavButton)]

    @property
    def language_buttons(self) -> list[LanguageButton]:
        return list(reversed(self.ids.languages.children))

    @property
    def mode_buttons(self) -> list:
        return list(reversed(self.ids.modes.children))

    @property
    def focus_ring(self) -> list[Button]:
        """What Tab and the arrows visit: the services first (what most come
        for), then Back and Home inside a category, then the language buttons,
        so a keypad user can change language, then the large text and high
        contrast switches."""
        return [
            *self.service_buttons,
            *self.nav_buttons,
            *self.language_buttons,
            *self.mode_buttons,
        ]

    @property
    def focused(self):
        """The button the keyboard focus is on, or None."""
        ring = self.focus_ring
        return ring[self.focus_index] if 0 <= self.focus_index < len(ring) else None

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


def item_detail(item: Service | Category, language: str) -> str:
    """What a button says under its name: why it is closed, the queue, or (a
    category) that it opens more choices."""
    if not item.is_open:
        state = item.availability
        return closed_reason(state.status, state.opens_at, language)
    if isinstance(item, Category):
        return tr("More choices", language)
    if item.waiting is not None:
        return ntr("{count} waiting", "{count} waiting", item.waiting, language)
    return ""


def _button(item: Service | Category, language: str) -> ServiceButton:
    kind = CategoryButton if isinstance(item, Category) else ServiceButton
    return kind(
        prefix="" if isinstance(item, Category) else item.prefix,
        title=_displayable(item.name(language)),
        detail=item_detail(item, language),
        is_open=item.is_open,
        disabled=not item.is_open,
        item=item,
    )


def _displayable(text: str) -> str:
    """Drop control characters; the label wraps and shortens the rest."""
    return "".join(ch for ch in text if ch.isprintable()).strip()
