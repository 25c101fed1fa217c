"""The service tree: categories that open a level of services and categories.

One set of rules for the server's branch file, the management page, the
kiosk's standalone config and the kiosk itself, so a tree one of them accepts
is a tree all of them can show: every category known, no cycles, at most
``MAX_DEPTH`` levels, no category without a service somewhere under it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sync import schedule

#: levels of categories: a customer should reach any service in a few taps
MAX_DEPTH = 3
MAX_CATEGORIES = 40

#: why a category with no open service says what it says: the reason that
#: ends soonest first ("Opens at 13:00" before "No more tickets today")
_REASON_ORDER = ("later", "full", "done_today", "closed_today", "closed")


class TreeError(ValueError):
    """A tree that cannot be shown; ``str()`` says which category and why."""


def check(
    parents: Mapping[str, str | None],
    service_categories: Iterable[str | None],
    *,
    allow_empty: bool = False,
) -> None:
    """Raise :class:`TreeError` unless ``parents`` (category id → its parent id,
    None at the top) and the categories services are put in make a tree.

    ``service_categories`` holds each service's category (None: the top level).
    A category with no service under it is refused unless ``allow_empty`` (the
    server's, being built up in the management page: kiosks do not show it).
    """
    if len(parents) > MAX_CATEGORIES:
        raise TreeError(f"at most {MAX_CATEGORIES} categories")
    for category, parent in parents.items():
        if parent is not None and parent not in parents:
            raise TreeError(f"category {category!r}: unknown parent category {parent!r}")
    for category in parents:
        seen = [category]
        parent = parents[category]
        while parent is not None:
            if parent in seen:
                cycle = " → ".join([*seen[seen.index(parent) :], parent])
                raise TreeError(
                    f"category {category!r}: its parents go round in a circle ({cycle})"
                )
            seen.append(parent)
            parent = parents[parent]
        if len(seen) > MAX_DEPTH:
            raise TreeError(
                f"category {category!r} is {len(seen)} levels deep; at most {MAX_DEPTH} "
                f"({' → '.join(reversed(seen))})"
            )
    used: set[str] = set()
    for category in service_categories:
        if category is None:
            continue
        if category not in parents:
            raise TreeError(f"unknown category {category!r}")
        while category is not None and category not in used:
            used.add(category)
            category = parents[category]
    empty = [c for c in parents if c not in used]
    if empty and not allow_empty:
        raise TreeError(
            f"category {empty[0]!r} has no service under it: put a service in it or remove it"
        )


def effective_parents(parents: Mapping[str, str | None]) -> dict[str, str | None]:
    """What a kiosk shows of a tree it did not check itself (a server's config):
    a category whose parent is unknown, or in a circle, or too deep, is shown
    at the top level rather than lost."""
    shown: dict[str, str | None] = {}
    for category, parent in parents.items():
        seen = {category}
        ancestor, depth = parent, 1
        while ancestor is not None and ancestor in parents and ancestor not in seen:
            seen.add(ancestor)
            ancestor, depth = parents[ancestor], depth + 1
        broken = ancestor is not None or depth > MAX_DEPTH
        shown[category] = None if broken else parent
    return shown


def summarise(states: Iterable[schedule.Availability]) -> schedule.Availability:
    """A category's state from its services': open if any is open; else the
    reason that ends soonest (the earliest "opens at" first), so the button
    can say why, as a service's does. A category with nothing under it is closed."""
    closed = []
    for state in states:
        if state.is_open:
            return schedule.OPEN
        closed.append(state)
    if not closed:
        return schedule.Availability("closed")

    def soonest(state: schedule.Availability) -> tuple[int, str]:
        rank = _REASON_ORDER.index(state.status) if state.status in _REASON_ORDER else 99
        return rank, state.opens_at or ""

    return min(closed, key=soonest)
