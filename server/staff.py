"""Staff: accounts, sessions and the login throttle (what a counter does is
``server.counter``).

Passwords are hashed with Argon2 (argon2-cffi). A session is a random token in
an HttpOnly, SameSite=Strict cookie, stored hashed, with its own CSRF token
that every form must carry back. Setting an account's password (or counter,
or role) ends its other sessions at once.

Logging in is throttled by source address and by account separately, with
leaky buckets (``server.throttle``): failures are forgotten one a minute.

- An address that made :data:`ADDRESS` ``.capacity`` wrong guesses waits (one
  more try a minute while it keeps failing), whatever account it tries.
- An account that drew :data:`ACCOUNT` ``.capacity`` recent wrong guesses is
  *under attack*: from then on only addresses with no failure of their own
  to forget may try it. Staff at their usual desk (which has not been
  failing) still log in with the right password; an attacker spraying from
  many addresses gets one guess per address per few minutes, never a lock on
  the account itself.
- Every check runs in :class:`server.throttle.PasswordChecks`' small pool,
  which caps the hashes per second the whole server spends on logins.

Passwords are verified outside any transaction: Argon2 takes tens to hundreds
of milliseconds, and SQLite's write lock must never wait for it (the kiosks'
ticket pushes need it). Every wrong password is logged (INFO) and every
lock-out (WARNING), with the username and address, never the password.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from catalogue import LANGUAGES as CATALOGUE_LANGUAGES
from catalogue import N_
from server import throttle
from server.storage import Rejected, Storage, Tx, iso, now

log = logging.getLogger("vuoro.server.login")

SESSION_HOURS = 12
ADDRESS = throttle.Bucket("login-address", capacity=5, leak_s=60)
ACCOUNT = throttle.Bucket("login-account", capacity=5, leak_s=60)
ROLES = ("staff", "manager", "organisation")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}\Z")
PASSWORD_RULE = (
    "a password needs 10 to 200 characters, at least 5 different ones, not only spaces, "
    "without the username, and not a run of keys like 1234567890 or qwertyuiop"
)
_RUNS = ("01234567890", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop")  # and backwards
#: RFC 9106's second recommended setting (64 MiB, 3 passes) on one lane: one
#: check is one thread, so the password-check pool's size is the CPU logins take
_hasher = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    """What a name nobody has is checked against, so timing tells nothing."""
    return _hasher.hash("not a password anyone has")


@dataclass(frozen=True)
class StaffMember:
    id: int
    branch_id: str
    username: str
    counter: str
    services: list[str]
    csrf: str = ""
    #: staff | manager (may change the branch, kiosks and staff) | organisation
    #: (a manager of their own branch who also sees the reports of further ones)
    role: str = "staff"
    language: str | None = None  # the console's language (None: the browser's)
    #: whether this session chose its counter and services (else the account's)
    counter_chosen: bool = False

    @property
    def manages(self) -> bool:
        return self.role in ("manager", "organisation")


class LockedOut(Exception):
    """Too many wrong passwords; try again after ``seconds``."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"too many attempts; try again in {seconds} s")
        self.seconds = seconds


@dataclass(frozen=True)
class Admission:
    """Whether a login may be checked now: ``wait_s`` > 0 refuses it without
    a check; ``clean`` says the address holds no failures (it goes first)."""

    wait_s: int
    clean: bool


def token_hash(token: str) -> str:
    """How a session token is stored (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _account(username: str) -> str:
    return username.strip().lower()[:64]


def password_problem(password: str, username: str = "") -> str:
    """Why ``password`` is refused ("" if it is not): the rule is
    :data:`PASSWORD_RULE`, said in full so staff know what to change."""
    lowered = password.lower()
    if not 10 <= len(password) <= 200:
        return "a password needs 10 to 200 characters"
    if not password.strip():
        return "a password cannot be only spaces"
    if len(set(lowered)) < 5:
        return "a password needs at least 5 different characters"
    if len(username) >= 3 and username.lower() in lowered:
        return "a password must not contain the username"
    if any(lowered in run or lowered in run[::-1] for run in _RUNS):
        return "a password cannot be a run of keys like 1234567890 or qwertyuiop"
    return ""


#: who may grant whom: nobody grants a role above their own
RANK = {"staff": 0, "manager": 1, "organisation": 2}
MAX_FURTHER_BRANCHES = 200
#: the role rules' refusals, in the catalogue (the management page says them
#: in the manager's language)
NOT_ABOVE = N_("Only an organisation manager can change or remove an organisation manager.")
NO_GRANT_ABOVE = N_("You cannot give a role above your own.")
NO_RAISE_SELF = N_("Nobody can raise their own role; ask an organisation manager.")
NOT_YOUR_BRANCH = N_("That branch is not one you manage.")
ONLY_OWN_BRANCHES = N_("You can only give branches that you can see yourself.")
ONLY_ORGANISATION_BRANCHES = N_("Only an organisation manager can create branches.")
FURTHER_ONLY_ORGANISATION = N_("Only an organisation manager has further branches.")


def grant_problem(
    by: StaffMember,
    visible: list[str],
    branch_id: str,
    *,
    current_role: str | None,
    role: str,
    branches: list[str],
    is_self: bool,
) -> str:
    """Why ``by`` may not make an account of ``branch_id`` a ``role`` with
    ``branches`` ("" if they may). ``visible``: the branches ``by`` manages.

    A manager creates and changes staff and managers of the branches they
    manage; only an organisation manager creates organisation managers, and
    gives them only branches they have themselves; nobody raises their own
    role, nor touches an account above their own.
    """
    mine = RANK.get(by.role, -1)
    if mine < RANK["manager"] or branch_id not in visible:
        return NOT_YOUR_BRANCH
    if current_role is not None and RANK.get(current_role, 0) > mine:
        return NOT_ABOVE
    if is_self and current_role is not None and RANK[role] > RANK.get(current_role, 0):
        return NO_RAISE_SELF
    if RANK[role] > mine:
        return NO_GRANT_ABOVE
    if any(b not in visible for b in branches):
        return ONLY_OWN_BRANCHES
    return ""


def _further_branches(branches: list[str], role: str, home: str) -> list[str]:
    """The further branches asked for, checked in shape (existence is checked
    in the transaction): distinct, without the home branch, only for the
    organisation role."""
    further = [b for b in dict.fromkeys(branches) if b and b != home]
    if further and role != "organisation":
        raise Rejected(FURTHER_ONLY_ORGANISATION)
    if len(further) > MAX_FURTHER_BRANCHES:
        raise Rejected(f"at most {MAX_FURTHER_BRANCHES} further branches")
    for branch in further:
        if len(branch) > 64 or not branch.isprintable():
            raise Rejected(f"no branch {branch[:64]!r}")
    return further


def _missing_branches(db: Tx, branches: list[str]) -> list[str]:
    if not branches:
        return []
    known = {r[0] for r in db.execute("SELECT id FROM branches")}
    return [b for b in branches if b not in known]


def _further_of(db: Tx, staff_id: int) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "SELECT branch_id FROM staff_branches WHERE staff_id = ? ORDER BY branch_id",
            [staff_id],
        )
    ]


def _branches_of(db: Tx, member: StaffMember) -> list[str]:
    """Home first, then the further ones (organisation managers only)."""
    if member.role != "organisation":
        return [member.branch_id]
    more = _further_of(db, member.id)
    return [member.branch_id, *(b for b in more if b != member.branch_id)]


class Staff:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # -- accounts ----------------------------------------------------------------

    def add(
        self,
        branch_id: str,
        username: str,
        password: str,
        counter: str,
        services: list[str],
        role: str = "staff",
        keep_session: str = "",
        branches: list[str] | None = None,
        by: StaffMember | None = None,
    ) -> str:
        """Create a staff member, or change one (a new password too); the stored name.

        ``branches``: the further branches whose reports an organisation manager
        reads (and which they manage); only that role has them. ``by``: the
        manager making the change, held to :func:`grant_problem`'s rules (None:
        the server's own command line, which may do anything). Changing an
        account ends its sessions at once, except ``keep_session`` (the
        manager's own, when they change their own account).
        """
        username = username.strip().lower()
        if not USERNAME.match(username):
            raise Rejected(
                "a username is 1 to 64 of a-z, 0-9, . _ @ - (starting with a letter/digit)"
            )
        problem = password_problem(password, username)
        if problem:
            raise Rejected(problem)
        counter = " ".join(counter.split())
        if not counter or len(counter) > 20 or not counter.isprintable():
            raise Rejected("a counter is named by 1 to 20 printable characters")
        if role not in ROLES:
            raise Rejected(f"a role is one of {', '.join(ROLES)}")
        further = _further_branches(branches or [], role, branch_id)
        password_hash = _hasher.hash(password)  # slow: before the write lock, never under it
        with self.storage.transaction() as db:
            if not db.execute("SELECT 1 FROM branches WHERE id = ?", [branch_id]).fetchone():
                raise Rejected(f"no branch {branch_id!r}")
            known = {
                r[0] for r in db.execute("SELECT id FROM services WHERE branch_id = ?", [branch_id])
            }
            unknown = sorted(set(services) - known)
            if unknown:
                raise Rejected(f"no service {unknown[0]!r} in {branch_id}")
            missing = _missing_branches(db, further)
            if missing:
                raise Rejected(f"no branch {missing[0]!r}")
            other = db.execute(
                "SELECT branch_id, role, id FROM staff WHERE username = ?", [username]
            ).fetchone()
            if other and other[0] != branch_id:
                # usernames are unique server-wide (they log in without a branch), but
                # whose they are is not this branch's business
                raise Rejected(f"the username {username!r} cannot be used; choose another")
            kept: list[str] = []
            if by is not None:
                visible = _branches_of(db, by)
                problem = grant_problem(
                    by,
                    visible,
                    branch_id,
                    current_role=other[1] if other else None,
                    role=role,
                    branches=further,
                    is_self=username == by.username,
                )
                if problem:
                    log.warning(
                        "%r may not make %r a %s in %s: %s",
                        by.username,
                        username,
                        role,
                        branch_id,
                        problem,
                    )
                    raise Rejected(problem)
                if other and role == "organisation":
                    # what the account had that this manager cannot see stays
                    kept = [b for b in _further_of(db, other[2]) if b not in visible]
            db.execute(
                "INSERT INTO staff (branch_id, username, password_hash, counter, services, "
                "created_at, role) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(username) DO UPDATE "
                "SET password_hash = excluded.password_hash, counter = excluded.counter, "
                "services = excluded.services, role = excluded.role",
                [
                    branch_id,
                    username,
                    password_hash,
                    counter,
                    json.dumps(services),
                    iso(now()),
                    role,
                ],
            )
            staff_id = db.execute("SELECT id FROM staff WHERE username = ?", [username]).fetchone()[
                0
            ]
            db.execute("DELETE FROM staff_branches WHERE staff_id = ?", [staff_id])
            for further_branch in sorted({*further, *kept}):
                db.insert("staff_branches", {"staff_id": staff_id, "branch_id": further_branch})
            ended = db.execute(
                "DELETE FROM sessions WHERE staff_id = ? AND token_hash != ?",
                [staff_id, token_hash(keep_session)],
            ).rowcount
        if ended:
            log.info("staff %r changed: %d session(s) ended", username, ended)
        return username

    def members(self, branch_id: str) -> list[dict]:
        """The branch's accounts; an organisation manager's further branches too."""
        with self.storage.reading() as db:
            rows = db.execute(
                "SELECT username, counter, services, role, id FROM staff WHERE branch_id = ? "
                "ORDER BY username",
                [branch_id],
            ).fetchall()
            further = {r[4]: _further_of(db, r[4]) for r in rows if r[3] == "organisation"}
        return [
            {
                "username": r[0],
                "counter": r[1],
                "services": json.loads(r[2]),
                "role": r[3],
                "branches": further.get(r[4], []),
            }
            for r in rows
        ]

    def remove(self, branch_id: str, username: str, by: StaffMember | None = None) -> bool:
        """Delete the account and end its sessions at once. ``by``: the manager
        removing it (Rejected for an account above their role); None: the CLI."""
        with self.storage.transaction() as db:
            row = db.execute(
                "SELECT id, role FROM staff WHERE branch_id = ? AND username = ?",
                [branch_id, username.strip().lower()],
            ).fetchone()
            if row is None:
                return False
            if by is not None and RANK[row[1]] > RANK.get(by.role, -1):
                raise Rejected(NOT_ABOVE)
            db.execute("DELETE FROM sessions WHERE staff_id = ?", [row[0]])
            db.execute("DELETE FROM staff_branches WHERE staff_id = ?", [row[0]])
            db.execute("DELETE FROM staff WHERE id = ?", [row[0]])
        return True

    def grant_branch(self, username: str, branch_id: str) -> None:
        """Give an organisation manager a further branch (the server's command
        line); Rejected for anyone else or an unknown branch."""
        with self.storage.transaction() as db:
            row = db.execute(
                "SELECT id, role, branch_id FROM staff WHERE username = ?",
                [username.strip().lower()],
            ).fetchone()
            if row is None or row[1] != "organisation":
                raise Rejected(f"{username!r} is not an organisation manager")
            if _missing_branches(db, [branch_id]):
                raise Rejected(f"no branch {branch_id!r}")
            if branch_id != row[2] and branch_id not in _further_of(db, row[0]):
                db.insert("staff_branches", {"staff_id": row[0], "branch_id": branch_id})

    def set_language(self, member: StaffMember, language: str | None) -> None:
        """The language the console and management pages speak to ``member``
        (None: their browser's); Rejected for a language the catalogue lacks."""
        if language is not None and language not in CATALOGUE_LANGUAGES:
            raise Rejected(f"a language is one of {', '.join(CATALOGUE_LANGUAGES)}")
        with self.storage.transaction() as db:
            db.execute("UPDATE staff SET language = ? WHERE id = ?", [language, member.id])

    def create_branch(self, branch: dict, by: StaffMember | None = None) -> None:
        """A new branch (as branch_file.check_branch made it), Rejected if its id
        is taken. Only an organisation manager (``by``) or the CLI (None) creates
        one; the creator gets it among their further branches, so they manage it
        and read its reports at once."""
        if by is not None and by.role != "organisation":
            raise Rejected(ONLY_ORGANISATION_BRANCHES)
        self.storage.add_branch(branch, grant_to=None if by is None else by.id)
        log.info(
            "branch %r created by %s",
            branch["id"],
            "the command line" if by is None else by.username,
        )

    # -- logging in ----------------------------------------------------------------

    def admission(self, username: str, address: str) -> Admission:
        """May this address try this account now? A read, no lock, no hash."""
        with self.storage.reading() as db:
            at = time.time()
            by_address = throttle.level(db, ADDRESS, throttle.address_key(address), at)
            by_account = throttle.level(db, ACCOUNT, _account(username), at)
        wait = throttle.wait_s(by_address, ADDRESS)
        if not wait and by_address > 0 and throttle.wait_s(by_account, ACCOUNT):
            # the account is under attack: only addresses that have not been failing
            wait = throttle.wait_s(by_address, ADDRESS, room=ADDRESS.capacity)
        return Admission(wait, by_address == 0)

    def check_password(self, username: str, password: str, address: str) -> str:
        """A new session token for the right password, "" for a wrong one.

        Argon2 runs with no transaction open; the failure (or the session) is
        then a short write of its own.
        """
        name = _account(username)
        with self.storage.reading() as db:
            staff = db.execute(
                "SELECT id, password_hash FROM staff WHERE username = ?", [name]
            ).fetchone()
        try:  # verify against a dummy hash too, so timing does not tell who exists
            _hasher.verify(staff[1] if staff else _dummy_hash(), password)
            ok = staff is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if ok:
            token = secrets.token_urlsafe(32)
            # hashes of older settings (four lanes) are renewed as their owners log in
            renewed = _hasher.hash(password) if _hasher.check_needs_rehash(staff[1]) else ""
            with self.storage.transaction() as db:
                if renewed:
                    db.execute(
                        "UPDATE staff SET password_hash = ? WHERE id = ? AND password_hash = ?",
                        [renewed, staff[0], staff[1]],
                    )
                db.execute("DELETE FROM sessions WHERE expires_at < ?", [iso(now())])
                db.insert(
                    "sessions",
                    {
                        "token_hash": token_hash(token),
                        "staff_id": staff[0],
                        "csrf": secrets.token_urlsafe(24),
                        "expires_at": iso(now() + timedelta(hours=SESSION_HOURS)),
                    },
                )
            log.info("login: %r from %s", name, address)
            return token
        self._failed(name, address)
        return ""

    def _failed(self, name: str, address: str) -> None:
        """Count a wrong password against the address and the account; log it,
        and log each lock-out as it begins."""
        source = throttle.address_key(address)
        with self.storage.transaction() as db:
            at = time.time()
            address_was = throttle.level(db, ADDRESS, source, at)
            account_was = throttle.level(db, ACCOUNT, name, at)
            by_address = throttle.add(db, ADDRESS, source, at)
            by_account = throttle.add(db, ACCOUNT, name, at)
            throttle.prune(db, at)
        log.info("login failed: %r from %s", name, address)
        if not throttle.wait_s(address_was, ADDRESS) and throttle.wait_s(by_address, ADDRESS):
            log.warning(
                "login lock-out: address %s after %d wrong passwords (the last for %r); "
                "one more try every %d s while it keeps failing",
                source,
                round(by_address),
                name,
                ADDRESS.leak_s,
            )
        if not throttle.wait_s(account_was, ACCOUNT) and throttle.wait_s(by_account, ACCOUNT):
            log.warning(
                "login lock-out: account %r after %d wrong passwords (the last from %s); "
                "only addresses without recent failures may try it now",
                name,
                round(by_account),
                source,
            )

    def log_in(self, username: str, password: str, address: str) -> str:
        """The whole login on this thread (scripts, tests): a session token,
        "" for a wrong password, or :class:`LockedOut`."""
        admission = self.admission(username, address)
        if admission.wait_s:
            raise LockedOut(admission.wait_s)
        return self.check_password(username, password, address)

    def session(self, token: str) -> StaffMember | None:
        if not token or len(token) > 100:
            return None
        with self.storage.reading() as db:
            row = db.execute(
                "SELECT s.id, s.branch_id, s.username, s.counter, s.services, x.csrf, s.role, "
                "s.language, x.counter, x.services "
                "FROM sessions x JOIN staff s ON s.id = x.staff_id "
                "WHERE x.token_hash = ? AND x.expires_at > ?",
                [token_hash(token), iso(now())],
            ).fetchone()
        if row is None:
            return None
        # the counter and services chosen for this session, else the account's
        chosen = row[8] is not None
        return StaffMember(
            row[0],
            row[1],
            row[2],
            row[8] if chosen else row[3],
            json.loads(row[9] if chosen and row[9] is not None else row[4]),
            row[5],
            row[6],
            row[7],
            chosen,
        )

    def branches(self, member: StaffMember) -> list[str]:
        """The branches whose reports ``member`` may read (and, for a manager,
        manage): their own, and for an organisation manager the further ones
        given to them."""
        with self.storage.reading() as db:
            return _branches_of(db, member)

    def log_out(self, token: str) -> None:
        with self.storage.transaction() as db:
            db.execute("DELETE FROM sessions WHERE token_hash = ?", [token_hash(token)])
