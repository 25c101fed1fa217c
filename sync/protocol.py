"""Sync protocol v1: the message shapes both ends use (the kiosk's sync daemon
and the server). Changing a shape here changes it for both, and for the
OpenAPI document other servers implement.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WrapValidator,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from sync import schedule

API = "/api/v1"
MAX_BATCH = 500  # tickets per push: 10,000 queued tickets are 20 requests
MAX_NUMBER = 999_999_999  # a ticket's number, leased or of a kiosk's own series
HEARTBEAT_S = 30.0  # a kiosk silent for a few of these is shown as offline

#: A kiosk's sequence and monotonic clock (31 years of nanoseconds) stay below this:
#: within SQLite's 64-bit INTEGER, and exact as a JSON number (a double) in the schema.
MAX_INT = 10**18
#: The years a kiosk's clock may say: a Pi without a real-time clock starts at 1970;
#: anything past this range is a broken or hostile clock, and refused.
FIRST_YEAR, LAST_YEAR = 1970, 2999


def parse_moment(text: str) -> datetime:
    """An ISO 8601 time with its UTC offset (RFC 3339, ``T``/``Z`` in either case).

    Raises ValueError for anything else: a time without an offset means a
    different instant in every time zone, so nobody could place it.
    """
    if len(text) > 40:
        raise ValueError("a time is at most 40 characters")
    moment = datetime.fromisoformat(text.upper())
    if moment.tzinfo is None:
        raise ValueError("a time needs its UTC offset, e.g. +00:00 or Z")
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise ValueError(f"a time is between the years {FIRST_YEAR} and {LAST_YEAR}")
    return moment


def _check_moment(text: str) -> str:
    parse_moment(text)
    return text


def _check_day(text: str) -> str:
    """A real calendar day (no 2026-02-30), within the years a clock may say."""
    day = date.fromisoformat(text)
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(f"a day is between the years {FIRST_YEAR} and {LAST_YEAR}")
    return text


_YEAR = "(19[7-9][0-9]|2[0-9]{3})"  # FIRST_YEAR to LAST_YEAR, for the schema
Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
Day = Annotated[
    str,
    StringConstraints(pattern=rf"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}$"),
    AfterValidator(_check_day),
    Field(json_schema_extra={"format": "date"}),
]
Moment = Annotated[
    str,
    StringConstraints(
        pattern=rf"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}[Tt ][0-9]{{2}}:[0-9]{{2}}"
        r"(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})$"
    ),
    AfterValidator(_check_moment),
    Field(json_schema_extra={"format": "date-time"}),
]
Text = Annotated[str, StringConstraints(max_length=500)]
#: Printable text of one line: no control characters (terminal escapes, newlines).
Label = Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]
BootId = Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]
MonoNs = Annotated[int, Field(ge=0, le=MAX_INT)]
Count = Annotated[int, Field(ge=0, le=10**9)]


class Message(BaseModel):
    """Unknown fields are ignored, so either end may grow first."""

    model_config = ConfigDict(extra="ignore")


class PairRequest(Message):
    code: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{4,12}$")]
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class PairResponse(Message):
    kiosk_id: Id
    branch_id: Id
    token: str
    reserve_tag: Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9A-Z]?$")]


class Branch(Message):
    id: Id
    name: Text
    timezone: str
    languages: list[str]


#: Where to go (a room, a floor): one printable line per language.
Place = Annotated[str, StringConstraints(max_length=120, pattern=r"^[^\x00-\x1f\x7f]*$")]


class Category(Message):
    """A button of the kiosk's service tree that opens a level of its own (added
    in v1 as an optional part of the config: older kiosks show services flat)."""

    id: Id
    names: dict[str, Text]
    # where it stands among the services and categories of its level
    position: Annotated[int, Field(ge=0, le=999)] = 0
    parent: Id | None = None  # None: the top level


class Service(Message):
    id: Id
    prefix: Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,3}$")]
    names: dict[str, Text]
    texts: dict[str, Text] = {}
    category: Id | None = None  # the Category it is listed under; None: the top level
    location: dict[str, Place] = {}  # where its customers go, per language
    is_open: bool = True
    daily_cap: int | None = None
    # opening hours (sync.schedule): None is always open; checked by the kiosk at each tap
    hours: dict[str, list[str]] | None = None
    exceptions: dict[str, list[str]] = {}
    last_ticket_min: int = 0

    @field_validator("hours", mode="before")
    @classmethod
    def _hours(cls, value: object) -> dict[str, list[str]] | None:
        return schedule.normalise_hours(value)

    @field_validator("exceptions", mode="before")
    @classmethod
    def _exceptions(cls, value: object) -> dict[str, list[str]]:
        return schedule.normalise_exceptions(value)

    @field_validator("last_ticket_min", mode="before")
    @classmethod
    def _last_ticket(cls, value: object) -> int:
        return schedule.check_last_ticket(value)

    @field_validator("daily_cap", mode="before")
    @classmethod
    def _cap(cls, value: object) -> int | None:
        return schedule.check_daily_cap(value)

    @property
    def opening(self) -> schedule.Schedule:
        return schedule.Schedule(self.hours, self.exceptions, self.last_ticket_min)


class KioskConfig(Message):
    branch: Branch
    services: list[Service]
    ticket_url_template: str
    texts: dict[str, Text] = {}
    categories: Annotated[list[Category], Field(max_length=40)] = []  # the service tree


class LeaseRequest(Message):
    service_id: Id
    day: Day
    count: Annotated[int, Field(ge=1, le=1000)]


class LeaseResponse(Message):
    service_id: Id
    day: Day
    first: int
    last: int


TicketState = Literal["printed", "print_failed", "void"]


class TicketIn(Message):
    """A ticket as the kiosk issued it. ``id`` is the permanent dedupe key."""

    id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    public_token: Token
    kiosk_seq: Annotated[int, Field(ge=1, le=MAX_INT)]
    service_id: Id
    day: Day
    number: Annotated[int, Field(ge=1, le=MAX_NUMBER)]
    series: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{0,4}$")] = ""
    display: Annotated[str, StringConstraints(max_length=16, pattern=r"^[^\x00-\x1f\x7f]*$")]
    language: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_-]{0,8}$")]
    issued_at: Moment  # the kiosk's wall clock
    state: TicketState
    # What the server needs to correct a Pi without a real-time clock: the
    # kiosk's monotonic clock when it issued the ticket and when it sent the
    # batch (same boot), and its wall clock at send time.
    issued_mono_ns: MonoNs
    boot_id: BootId = ""
    # "unsure": the kiosk could not trust its wall clock when it issued the ticket
    # (sync.clock), so only the monotonic clock of the same boot can place it.
    time_source: Literal["system", "server", "unsure"] = "system"


class InvalidRow:
    """A row of a batch that is not a :class:`TicketIn`: the server answers it
    ``rejected:<reason>`` alone and applies the rest of the batch."""

    def __init__(self, ticket_id: str, reason: str) -> None:
        self.id, self.reason = ticket_id, reason

    @classmethod
    def check(cls, value: Any, _handler: Any) -> TicketIn | InvalidRow:
        """Each row on its own: one bad value must not refuse the others with it."""
        try:
            return TicketIn.model_validate(value)
        except ValidationError as exc:
            fields = dict.fromkeys(  # the fields at fault, in order, each once
                str(e["loc"][0]) if e["loc"] and e["loc"][0] in TicketIn.model_fields else "row"
                for e in exc.errors()
            )
            raw_id = value.get("id") if isinstance(value, dict) else None
            shaped = isinstance(raw_id, str) and _ROW_ID.fullmatch(raw_id) is not None
            return cls(raw_id if shaped else "", "invalid:" + ",".join(fields))


_ROW_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


#: The schema says TicketIn (what a kiosk must send); a row that is not one
#: still validates, as an :class:`InvalidRow`, so it is refused alone.
TicketRow = Annotated[TicketIn | SkipJsonSchema[InvalidRow], WrapValidator(InvalidRow.check)]


class TicketBatch(Message):
    """Up to ``MAX_BATCH`` tickets in the kiosk's order; a malformed envelope is
    refused whole (422), a malformed row alone (``rejected:invalid:<field>``)."""

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    sent_at: Moment  # kiosk wall clock at send
    sent_mono_ns: MonoNs
    boot_id: BootId = ""
    tickets: Annotated[list[TicketRow], Field(max_length=MAX_BATCH)]


Outcome = Literal["created", "duplicate"] | str  # or "rejected:<reason>"


class TicketResult(Message):
    id: str
    result: str


class TicketBatchResult(Message):
    results: list[TicketResult]
    server_time: str


#: The heartbeat's printer states in which a kiosk cannot promise paper.
NO_PAPER_STATES = frozenset({"paper_out", "cover_open", "offline", "not_responding", "error"})

CommandId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
#: command results one heartbeat carries at most
MAX_RESULTS = 20


class CommandResult(Message):
    """How a command ended on the kiosk: ``done``, ``printed``, ``failed:<why>``,
    ``skipped:<why>`` (refused as malformed, too old, unknown), ``unknown:<why>``
    (cut short: the paper may or may not have come out)."""

    id: CommandId
    result: Label


class Heartbeat(Message):
    """Every field bounded: staff pages show what the kiosk said."""

    printer: Label = "unknown"
    outbox: Count = 0
    parked: Count = 0
    version: Label = ""
    sent_at: Moment | Literal[""] = ""
    out_of_order: bool = False  # switched off from the kiosk's admin menu
    clock: Text = ""  # "unsure: <why>" while the kiosk cannot tell the day; else its source
    problems: Annotated[list[Text], Field(max_length=20)] = []  # for staff: recovered DB, ...
    # commands beyond the first three this kiosk carries out (e.g. "print_ticket"):
    # the server sends a kiosk only what it says it accepts
    accepts: Annotated[list[Label], Field(max_length=20)] = []
    # how the kiosk's recent commands ended (a printed counter ticket, or why not)
    results: Annotated[list[CommandResult], Field(max_length=MAX_RESULTS)] = []


class QueueState(Message):
    waiting: int
    estimated_wait_s: int | None = None
    issued: int | None = None  # today, all kiosks: the kiosk's view of the daily cap
    # seconds one more person ahead adds: the kiosk adds its own tickets since the snapshot
    wait_per_person_s: float | None = None


#: what staff may send a kiosk from the management page and the CLI
OPERATOR_COMMANDS = ("reload", "reboot", "sync_now")
#: every command of v1; ``print_ticket`` only to a kiosk whose heartbeat accepts it
COMMANDS = (*OPERATOR_COMMANDS, "print_ticket")
CommandKind = Literal["reload", "reboot", "sync_now", "print_ticket"]  # COMMANDS
#: commands one heartbeat reply carries at most; more is a broken server
MAX_COMMANDS = 100
#: a service's names or places: this many languages at most
_PerLanguage = Annotated[
    dict[Annotated[str, StringConstraints(max_length=8)], Label], Field(max_length=20)
]
Url = Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://[^\x00-\x20\x7f]+$")]


class PrintTicket(Message):
    """``print_ticket``'s data: a ticket staff gave at a counter (the server's
    number, already in the queue), for the kiosk to print with its own layout."""

    ticket_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    number: Annotated[
        str, StringConstraints(min_length=1, max_length=16, pattern=r"^[^\x00-\x1f\x7f]+$")
    ]
    service_id: Id
    service_names: _PerLanguage = {}
    location: _PerLanguage = {}  # where the service's customers go
    url: Url  # the live ticket page: the QR code
    issued_at: Moment
    language: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_-]{0,8}$")] = ""
    waiting: Count | None = None  # before this ticket when it was given
    estimated_wait_s: Count | None = None


class Command(Message):
    id: CommandId
    kind: CommandKind
    # what the command needs; for print_ticket a PrintTicket (checked by the kiosk)
    data: Annotated[dict[str, Any], Field(max_length=40)] = {}


class UnknownCommand:
    """A command this kiosk cannot carry out (a kind of a newer protocol, a bad
    shape): kept apart so the rest of the reply still counts, and answered
    ``skipped:<why>`` when it has an id to answer."""

    def __init__(self, command_id: str, reason: str) -> None:
        self.id, self.reason = command_id, reason

    @classmethod
    def check(cls, value: Any, _handler: Any) -> Command | UnknownCommand:
        try:
            return Command.model_validate(value)
        except ValidationError as exc:
            raw_id = value.get("id") if isinstance(value, dict) else None
            if isinstance(raw_id, int) and not isinstance(raw_id, bool):
                raw_id = str(raw_id)
            shaped = isinstance(raw_id, str) and _ROW_ID.fullmatch(raw_id) is not None
            kind = value.get("kind") if isinstance(value, dict) else None
            fields = dict.fromkeys(
                str(e["loc"][0]) if e["loc"] and e["loc"][0] in Command.model_fields else "row"
                for e in exc.errors()
            )
            why = (
                "unknown kind"
                if fields == {"kind": None} and isinstance(kind, str)
                else "invalid:" + ",".join(fields)
            )
            return cls(raw_id if shaped else "", why)


CommandRow = Annotated[
    Command | SkipJsonSchema[UnknownCommand], WrapValidator(UnknownCommand.check)
]


class HeartbeatResponse(Message):
    """A command of a kind this kiosk does not know, or of a bad shape, does not
    refuse the reply: it becomes an :class:`UnknownCommand` (v1 grows kinds)."""

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    server_time: str
    queue: dict[str, QueueState]
    commands: Annotated[list[CommandRow], Field(max_length=MAX_COMMANDS)] = []


class PublicTicket(Message):
    """What anyone holding a ticket's token may see of it (the QR code's page)."""

    number: str
    service: str
    # parked: received, but no day's queue could take it; staff place it
    status: Literal[
        "waiting", "called", "serving", "served", "no_show", "cancelled", "void", "parked"
    ]
    position: int | None
    estimated_wait_s: int | None
    counter: str | None
    # where to go once called, in the ticket's language: the counter's place, else the service's
    location: str | None = None
    # a recall moves it: the ticket page tells a recall from the first call by
    # it and alerts its holder again. Optional (v1 grew by it)
    called_at: Moment | None = Field(
        default=None,
        description="when the ticket was last called to its counter (a recall moves it), "
        "while it is called or being served; null otherwise",
    )
