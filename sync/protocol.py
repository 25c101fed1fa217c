"""Sync protocol v1: the message shapes both ends use (the kiosk's sync daemon
and the server). Changing a shape here changes it for both, and for the
OpenAPI document other servers implement.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from sync import schedule

API = "/api/v1"
MAX_BATCH = 500  # tickets per push: 10,000 queued tickets are 20 requests
HEARTBEAT_S = 30.0  # a kiosk silent for a few of these is shown as offline

Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
Day = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]
Text = Annotated[str, StringConstraints(max_length=500)]


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


class Service(Message):
    id: Id
    prefix: Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,3}$")]
    names: dict[str, Text]
    texts: dict[str, Text] = {}
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
    kiosk_seq: Annotated[int, Field(ge=1)]
    service_id: Id
    day: Day
    number: Annotated[int, Field(ge=1)]
    series: Annotated[str, StringConstraints(max_length=4)] = ""
    display: Annotated[str, StringConstraints(max_length=16)]
    language: Annotated[str, StringConstraints(max_length=8)]
    issued_at: str  # the kiosk's wall clock, ISO 8601
    state: TicketState
    # What the server needs to correct a Pi without a real-time clock: the
    # kiosk's monotonic clock when it issued the ticket and when it sent the
    # batch (same boot), and its wall clock at send time.
    issued_mono_ns: int
    boot_id: str = ""
    # "unsure": the kiosk could not trust its wall clock when it issued the ticket
    # (sync.clock), so only the monotonic clock of the same boot can place it.
    time_source: Literal["system", "server", "unsure"] = "system"


class TicketBatch(Message):
    sent_at: str  # kiosk wall clock at send
    sent_mono_ns: int
    boot_id: str = ""
    tickets: Annotated[list[TicketIn], Field(max_length=MAX_BATCH)]


Outcome = Literal["created", "duplicate"] | str  # or "rejected:<reason>"


class TicketResult(Message):
    id: str
    result: str


class TicketBatchResult(Message):
    results: list[TicketResult]
    server_time: str


class Heartbeat(Message):
    printer: str = "unknown"
    outbox: int = 0
    parked: int = 0
    version: str = ""
    sent_at: str = ""
    out_of_order: bool = False  # switched off from the kiosk's admin menu
    clock: Text = ""  # "unsure: <why>" while the kiosk cannot tell the day; else its source
    problems: Annotated[list[Text], Field(max_length=20)] = []  # for staff: recovered DB, ...


class QueueState(Message):
    waiting: int
    estimated_wait_s: int | None = None
    issued: int | None = None  # today, all kiosks: the kiosk's view of the daily cap
    # seconds one more person ahead adds: the kiosk adds its own tickets since the snapshot
    wait_per_person_s: float | None = None


COMMANDS = ("reload", "reboot", "sync_now")


class Command(Message):
    id: str
    kind: Literal["reload", "reboot", "sync_now"]  # COMMANDS


class HeartbeatResponse(Message):
    server_time: str
    queue: dict[str, QueueState]
    commands: list[Command] = []


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
