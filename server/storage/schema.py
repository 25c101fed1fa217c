"""The server's tables, once, for SQLite and PostgreSQL alike (SQLAlchemy Core).

Times are ISO 8601 text in UTC with milliseconds (``iso()``), so they sort as
text and read the same from either database. Text compares byte by byte on
PostgreSQL too (collation "C"): a place among tickets of one millisecond is
decided by their ids, and Python, SQLite and PostgreSQL must agree on that
order. Numbers a kiosk sends are 64-bit (the protocol allows up to 10^18).

Alembic's migrations (``server/storage/migrations``) are what creates and
changes the tables; this is what they must arrive at, checked by a test.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

#: text that sorts byte by byte everywhere
Text = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()


def _col(name: str, *args, **kwargs) -> sa.Column:
    """A column, NOT NULL unless said; text unless a type comes first."""
    is_type = args and isinstance(args[0], (sa.types.TypeEngine, type))
    if not is_type:
        args = (Text, *args)
    return sa.Column(name, *args, nullable=kwargs.pop("nullable", False), **kwargs)


branches = sa.Table(
    "branches",
    metadata,
    _col("id", primary_key=True),
    _col("name"),
    _col("timezone"),
    _col("languages"),
    _col("ticket_url_template"),
    _col("updated_at"),
    # whether customers may join its queues from their phones (/join/{branch})
    _col("remote_join", Int, server_default="0"),
)

services = sa.Table(
    "services",
    metadata,
    _col("branch_id", sa.ForeignKey("branches.id"), primary_key=True),
    _col("id", primary_key=True),
    _col("prefix"),
    _col("names"),
    _col("texts", server_default="{}"),
    _col("position", Int),
    _col("is_open", Int, server_default="1"),
    _col("daily_cap", Int, nullable=True),
    _col("listed", Int, server_default="1"),
    # a counter calls waiting tickets of higher-priority services first
    _col("priority", Int, server_default="0"),
    # opening hours, date exceptions and last-ticket time (sync.schedule), as JSON
    _col("schedule", server_default="{}"),
    # the kiosk's service tree: the category it is listed under (none: the top level)
    _col("category", nullable=True),
    # where its customers go, per language (JSON), unless the calling counter has a place
    _col("locations", server_default="{}"),
    sa.UniqueConstraint("branch_id", "prefix"),
)

# the kiosk's service tree: a category opens a level of services and categories;
# ``parent`` nests it (a few levels at most, no cycles: branch_file checks)
categories = sa.Table(
    "categories",
    metadata,
    _col("branch_id", sa.ForeignKey("branches.id"), primary_key=True),
    _col("id", primary_key=True),
    _col("names"),
    _col("position", Int, server_default="0"),
    _col("parent", nullable=True),
)

# where a counter is (room, floor), per language (JSON): said with its calls
counter_locations = sa.Table(
    "counter_locations",
    metadata,
    _col("branch_id", sa.ForeignKey("branches.id"), primary_key=True),
    _col("counter", primary_key=True),
    _col("locations"),
)

kiosks = sa.Table(
    "kiosks",
    metadata,
    _col("id", primary_key=True),
    _col("branch_id", sa.ForeignKey("branches.id")),
    _col("name"),
    _col("token_hash", unique=True),
    _col("reserve_tag"),
    _col("created_at"),
    _col("revoked_at", nullable=True),
    _col("last_seen_at", nullable=True),
    _col("last_heartbeat", nullable=True),
    _col("applied_seq", Int, server_default="0"),
    _col("renamed_at", nullable=True),
    sa.UniqueConstraint("branch_id", "reserve_tag"),
)

pairing_codes = sa.Table(
    "pairing_codes",
    metadata,
    _col("code_hash", primary_key=True),
    _col("branch_id", sa.ForeignKey("branches.id")),
    _col("expires_at"),
    _col("used_at", nullable=True),
)

counters = sa.Table(
    "counters",
    metadata,
    _col("branch_id", primary_key=True),
    _col("service_id", primary_key=True),
    _col("day", primary_key=True),
    _col("next", Int),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    _col("kiosk_id", sa.ForeignKey("kiosks.id")),
    _col("branch_id"),
    _col("service_id"),
    _col("day"),
    _col("first", Int),
    _col("last", Int),
    _col("created_at"),
    sa.Index("leases_lookup", "kiosk_id", "service_id", "day"),
    # a ticket's lease in one step, however many leases the kiosk holds
    sa.Index("leases_by_first", "kiosk_id", "service_id", "day", "first"),
    sa.Index("leases_by_day", "branch_id", "day"),  # pruning old days
)

tickets = sa.Table(
    "tickets",
    metadata,
    _col("id", primary_key=True),
    _col("branch_id"),
    _col("service_id"),
    _col("kiosk_id", nullable=True),
    _col("public_token", unique=True),
    _col("day"),
    _col("number", Int),
    _col("series", server_default=""),
    _col("display"),
    _col("kiosk_seq", Int, nullable=True),
    _col("language"),
    _col("issued_at_kiosk", nullable=True),
    _col("queued_at"),
    _col("received_at"),
    # waiting, parked, void, called, serving, served, no_show, cancelled
    _col("status"),
    _col("print_state", server_default="printed"),
    _col("counter", nullable=True),
    _col("called_at", nullable=True),
    _col("finished_at", nullable=True),
    _col("started_at", nullable=True),
    # the queue a ticket waits in: its own service's, unless staff transferred it
    _col("queue_id", nullable=True),
    # why no day's queue could take it (status parked), for staff
    _col("park_reason", nullable=True),
    # the staff member who called it last (reports per staff member)
    _col("staff_id", Int, nullable=True),
    # why staff called this one out of turn (none: called next in line)
    _col("call_reason", nullable=True),
    # how many times staff moved it to another service's queue
    _col("transfers", Int, server_default="0"),
    # kiosk, counter (given by staff to a customer the kiosk could not serve), or
    # remote (joined from the customer's phone)
    _col("origin", server_default="kiosk"),
    # remote: the hash of the phone's device cookie (one active ticket per service)
    _col("device", nullable=True),
    sa.UniqueConstraint("branch_id", "service_id", "day", "series", "number"),
    sa.Index("tickets_queue", "branch_id", "service_id", "status", "queued_at"),
    sa.Index("tickets_by_kiosk", "kiosk_id", "kiosk_seq"),
    # the calling order's tie-break too, so a place among tickets of one
    # millisecond is counted in the index alone
    sa.Index(
        "tickets_waiting", "branch_id", "queue_id", "day", "status", "queued_at", "kiosk_seq", "id"
    ),
    # a counter's called ticket, checked at every call
    sa.Index("tickets_at_counter", "branch_id", "counter", "status"),
    sa.Index("tickets_by_day", "branch_id", "day"),  # reports
    # a phone's active ticket of a service, looked up at each join
    sa.Index("tickets_by_device", "device", "branch_id", "service_id", "status"),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    _col("kiosk_id", sa.ForeignKey("kiosks.id")),
    _col("kind"),
    _col("created_at"),
    _col("delivered_at", nullable=True),
    # what the command needs (JSON): a ticket to print, for ``print_ticket``
    _col("data", server_default="{}"),
)

staff = sa.Table(
    "staff",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    _col("branch_id", sa.ForeignKey("branches.id")),
    _col("username", unique=True),
    _col("password_hash"),
    _col("counter"),
    _col("services", server_default="[]"),
    _col("created_at"),
    # managers edit their branch; staff only call
    _col("role", server_default="staff"),
    # the language the console speaks to them (none: their browser's)
    _col("language", nullable=True),
)

sessions = sa.Table(
    "sessions",
    metadata,
    _col("token_hash", primary_key=True),
    _col("staff_id", sa.Integer, sa.ForeignKey("staff.id")),
    _col("csrf"),
    _col("expires_at"),
    # the counter this session works, and its services today (JSON), chosen at login
    _col("counter", nullable=True),
    _col("services", nullable=True),
)

# each counter's day: opened (with its services), paused, closed, by whom; the
# newest row is its state now; reports count staffed counters per hour from it
counter_log = sa.Table(
    "counter_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    _col("branch_id", sa.ForeignKey("branches.id")),
    _col("counter"),
    _col("staff_id", Int, nullable=True),
    _col("state"),  # open | paused | closed
    _col("services", server_default="[]"),
    _col("at"),
    sa.Index("counter_log_by_counter", "branch_id", "counter", "id"),
    sa.Index("counter_log_by_time", "branch_id", "at"),
)

# the further branches an organisation manager sees (their own is staff.branch_id)
staff_branches = sa.Table(
    "staff_branches",
    metadata,
    _col("staff_id", sa.Integer, sa.ForeignKey("staff.id"), primary_key=True),
    _col("branch_id", sa.ForeignKey("branches.id"), primary_key=True),
)

feedback = sa.Table(
    "feedback",
    metadata,
    _col("ticket_id", sa.ForeignKey("tickets.id"), primary_key=True),
    _col("rating", Int),
    _col("comment", server_default=""),
    _col("created_at"),
    sa.CheckConstraint("rating BETWEEN 1 AND 5", name="feedback_rating"),
)

# failures that leak away (server.throttle): per address, per account, per server
throttle = sa.Table(
    "throttle",
    metadata,
    _col("key", primary_key=True),
    _col("level", sa.Float),
    _col("updated_at", sa.Float),
    sa.Index("throttle_age", "updated_at"),
)

# what changed, for the live channel (server.events): written in the transaction
# of the change itself, read by every worker after the last id it saw, kept a day
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", Int, primary_key=True, autoincrement=True),
    _col("branch_id"),
    _col("queue_id", nullable=True),
    _col("kind"),
    _col("data"),
    _col("created_at"),
    sa.Index("events_age", "created_at"),
    sqlite_autoincrement=True,  # ids never reused, even once every row is pruned
)

# waiting-room displays: paired like kiosks, each with its own revocable token;
# ``settings`` is JSON (services, counters, languages, volume)
displays = sa.Table(
    "displays",
    metadata,
    _col("id", primary_key=True),
    _col("branch_id", sa.ForeignKey("branches.id")),
    _col("name"),
    _col("token_hash", unique=True),
    _col("settings", server_default="{}"),
    _col("created_at"),
    _col("revoked_at", nullable=True),
    _col("last_seen_at", nullable=True),
)

# one line the branch's displays show under the calls (empty: none)
display_messages = sa.Table(
    "display_messages",
    metadata,
    _col("branch_id", sa.ForeignKey("branches.id"), primary_key=True),
    _col("text"),
    _col("updated_at"),
)

# a display's recent calls: the branch's newest ``called`` events
sa.Index("events_branch_kind", events.c.branch_id, events.c.kind, events.c.id)

# "call me back": a customer's phone number and reason instead of a place in the
# queue (server.storage.callbacks); phone and reason are blanked ("") once the
# branch's retention after closing has passed (``purged_at``)
callbacks = sa.Table(
    "callbacks",
    metadata,
    _col("id", primary_key=True),
    _col("branch_id", sa.ForeignKey("branches.id")),
    _col("service_id", nullable=True),
    _col("phone"),  # E.164
    _col("reason"),
    _col("language"),
    # web (the public page); kiosk and ticket later
    _col("origin", server_default="web"),
    _col("created_at"),
    # waiting | reached | given_up
    _col("state", server_default="waiting"),
    _col("tries", Int, server_default="0"),
    _col("last_try_at", nullable=True),
    _col("reached_at", nullable=True),
    _col("closed_at", nullable=True),
    # who closed it (reached, or the last try before giving up)
    _col("staff_id", Int, nullable=True),
    _col("purged_at", nullable=True),
    sa.Index("callbacks_open", "branch_id", "state", "created_at"),
    sa.Index("callbacks_by_time", "branch_id", "created_at"),
    sa.Index("callbacks_closed", "state", "closed_at"),
)

# a branch's call-back settings (its branch file's [callbacks]); none: the defaults
callback_settings = sa.Table(
    "callback_settings",
    metadata,
    _col("branch_id", sa.ForeignKey("branches.id"), primary_key=True),
    _col("enabled", Int, server_default="1"),
    # the region a number without +country code is read in (ISO 3166 alpha-2)
    _col("country", server_default="FI"),
    # "not reached" this many times: given up
    _col("max_tries", Int, server_default="3"),
    # days after closing before the phone and the reason are blanked
    _col("retention_days", Int, server_default="30"),
)

# "tell me when my turn nears": the address a ticket's holder gave (one per
# ticket), deleted when the ticket is done, on "erase my data", or past the
# branch's retention (server.storage.notify)
notify_contacts = sa.Table(
    "notify_contacts",
    metadata,
    _col("ticket_id", sa.ForeignKey("tickets.id"), primary_key=True),
    _col("branch_id"),
    _col("channel"),  # email | sms
    _col("address"),  # the e-mail address as typed (checked), or E.164
    _col("language"),
    _col("created_at"),
)

# the messages to send: once per ticket and kind (the idempotency key)
notify_outbox = sa.Table(
    "notify_outbox",
    metadata,
    _col("id", primary_key=True),
    _col("ticket_id"),
    _col("branch_id"),
    _col("kind"),  # near | turn
    _col("channel"),
    _col("address"),  # blanked ("") once sent, failed or dropped
    _col("subject", server_default=""),
    _col("body"),
    # queued | sending | sent | failed | dropped
    _col("state", server_default="queued"),
    _col("tries", Int, server_default="0"),
    _col("next_attempt_at"),
    # a sender holds a row it claimed until then; past it, another may take it
    _col("claimed_until", nullable=True),
    _col("last_error", server_default=""),
    _col("created_at"),
    _col("sent_at", nullable=True),
    sa.UniqueConstraint("ticket_id", "kind", name="notify_outbox_once"),
    sa.Index("notify_outbox_due", "state", "next_attempt_at"),
    sa.Index("notify_outbox_branch", "branch_id", "created_at"),
)
