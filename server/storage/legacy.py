"""The schema before Alembic: SQLite files made by earlier versions, counted by
``PRAGMA user_version``. Opening such a file applies what it lacks of this
list, then hands it to Alembic at the baseline revision (the same tables).
Never changed again: new changes are Alembic revisions.
"""

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS branches (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, timezone TEXT NOT NULL,
        languages TEXT NOT NULL, ticket_url_template TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS services (
        branch_id TEXT NOT NULL REFERENCES branches(id), id TEXT NOT NULL,
        prefix TEXT NOT NULL, names TEXT NOT NULL, texts TEXT NOT NULL DEFAULT '{}',
        position INTEGER NOT NULL, is_open INTEGER NOT NULL DEFAULT 1, daily_cap INTEGER,
        listed INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (branch_id, id), UNIQUE (branch_id, prefix))""",
    """CREATE TABLE IF NOT EXISTS kiosks (
        id TEXT PRIMARY KEY, branch_id TEXT NOT NULL REFERENCES branches(id),
        name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, reserve_tag TEXT NOT NULL,
        created_at TEXT NOT NULL, revoked_at TEXT, last_seen_at TEXT,
        last_heartbeat TEXT, applied_seq INTEGER NOT NULL DEFAULT 0,
        UNIQUE (branch_id, reserve_tag))""",
    """CREATE TABLE IF NOT EXISTS pairing_codes (
        code_hash TEXT PRIMARY KEY, branch_id TEXT NOT NULL REFERENCES branches(id),
        expires_at TEXT NOT NULL, used_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS counters (
        branch_id TEXT NOT NULL, service_id TEXT NOT NULL, day TEXT NOT NULL,
        next INTEGER NOT NULL, PRIMARY KEY (branch_id, service_id, day))""",
    """CREATE TABLE IF NOT EXISTS leases (
        id INTEGER PRIMARY KEY, kiosk_id TEXT NOT NULL REFERENCES kiosks(id),
        branch_id TEXT NOT NULL, service_id TEXT NOT NULL, day TEXT NOT NULL,
        first INTEGER NOT NULL, last INTEGER NOT NULL, created_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS leases_lookup ON leases(kiosk_id, service_id, day)",
    # a ticket's lease in one step, however many leases the kiosk holds
    "CREATE INDEX IF NOT EXISTS leases_by_first ON leases(kiosk_id, service_id, day, first)",
    "CREATE INDEX IF NOT EXISTS leases_by_day ON leases(branch_id, day)",  # pruning old days
    """CREATE TABLE IF NOT EXISTS tickets (
        id TEXT PRIMARY KEY, branch_id TEXT NOT NULL, service_id TEXT NOT NULL,
        kiosk_id TEXT, public_token TEXT NOT NULL UNIQUE, day TEXT NOT NULL,
        number INTEGER NOT NULL, series TEXT NOT NULL DEFAULT '', display TEXT NOT NULL,
        kiosk_seq INTEGER, language TEXT NOT NULL, issued_at_kiosk TEXT,
        queued_at TEXT NOT NULL, received_at TEXT NOT NULL,
        status TEXT NOT NULL,  -- waiting, void, called, served, no_show, cancelled
        print_state TEXT NOT NULL DEFAULT 'printed',
        UNIQUE (branch_id, service_id, day, series, number))""",
    "CREATE INDEX IF NOT EXISTS tickets_queue ON tickets(branch_id, service_id, status, queued_at)",
    "CREATE INDEX IF NOT EXISTS tickets_by_kiosk ON tickets(kiosk_id, kiosk_seq)",
    """CREATE TABLE IF NOT EXISTS commands (
        id INTEGER PRIMARY KEY, kiosk_id TEXT NOT NULL REFERENCES kiosks(id),
        kind TEXT NOT NULL, created_at TEXT NOT NULL, delivered_at TEXT)""",
]


MIGRATIONS = [
    "ALTER TABLE tickets ADD COLUMN counter TEXT",
    "ALTER TABLE tickets ADD COLUMN called_at TEXT",
    "ALTER TABLE tickets ADD COLUMN finished_at TEXT",
    "ALTER TABLE tickets ADD COLUMN started_at TEXT",
    """CREATE TABLE staff (
        id INTEGER PRIMARY KEY, branch_id TEXT NOT NULL REFERENCES branches(id),
        username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, counter TEXT NOT NULL,
        services TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL)""",
    """CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY, staff_id INTEGER NOT NULL REFERENCES staff(id),
        csrf TEXT NOT NULL, expires_at TEXT NOT NULL)""",
    """CREATE TABLE login_failures (
        key TEXT PRIMARY KEY, failures INTEGER NOT NULL, locked_until TEXT)""",
    """CREATE TABLE feedback (
        ticket_id TEXT PRIMARY KEY REFERENCES tickets(id),
        rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
        comment TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL)""",
    # the queue a ticket waits in: its own service's, unless staff transferred it
    "ALTER TABLE tickets ADD COLUMN queue_id TEXT",
    "UPDATE tickets SET queue_id = service_id",
    "CREATE INDEX tickets_waiting ON tickets(branch_id, queue_id, status, queued_at)",
    "DROP INDEX tickets_waiting",
    "CREATE INDEX tickets_waiting ON tickets(branch_id, queue_id, day, status, queued_at)",
    # a counter calls waiting tickets of higher-priority services first
    "ALTER TABLE services ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
    # opening hours, date exceptions and last-ticket time (sync.schedule), as JSON
    "ALTER TABLE services ADD COLUMN schedule TEXT NOT NULL DEFAULT '{}'",
    # managers edit their branch; staff only call
    "ALTER TABLE staff ADD COLUMN role TEXT NOT NULL DEFAULT 'staff'",
    "ALTER TABLE kiosks ADD COLUMN renamed_at TEXT",
    # a ticket nobody can place in a day's queue waits here for staff, with the reason
    "ALTER TABLE tickets ADD COLUMN park_reason TEXT",
    # failures that leak away (server.throttle): per address, per account, per server
    "CREATE TABLE throttle (key TEXT PRIMARY KEY, level REAL NOT NULL, updated_at REAL NOT NULL)",
    "CREATE INDEX throttle_age ON throttle(updated_at)",
    "DROP TABLE login_failures",
    # a counter's called ticket, checked at every call
    "CREATE INDEX tickets_at_counter ON tickets(branch_id, counter, status)",
    # the calling order's tie-break too, so a place among tickets of one millisecond
    # is counted in the index alone
    "DROP INDEX tickets_waiting",
    "CREATE INDEX tickets_waiting ON tickets(branch_id, queue_id, day, status, queued_at, "
    "kiosk_seq, id)",
]
