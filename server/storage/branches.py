"""Branches and their services: what the kiosks offer and the queues are of."""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa

from server.storage import callbacks
from server.storage.common import Rejected, branch_today, iso, now
from server.storage.database import Database, Tx
from sync import protocol, tree


def _service_row(branch_id: str, service: dict, position: int) -> dict:
    return {
        "branch_id": branch_id,
        "id": service["id"],
        "prefix": service["prefix"],
        "names": json.dumps(service["names"], ensure_ascii=False),
        "texts": json.dumps(service.get("texts", {}), ensure_ascii=False),
        "position": position,
        "is_open": int(service.get("is_open", True)),
        "daily_cap": service.get("daily_cap"),
        "priority": int(service.get("priority", 0)),
        "schedule": json.dumps(service.get("schedule") or {}),
        "category": service.get("category"),
        "locations": json.dumps(service.get("locations") or {}, ensure_ascii=False),
        "listed": 1,
    }


def _check_tree(db: Tx, branch_id: str) -> None:
    """Rejected unless the branch's categories, as the transaction has them, make
    a tree a kiosk can show (an empty category is kept: kiosks hide it)."""
    parents = dict(
        db.execute("SELECT id, parent FROM categories WHERE branch_id = ?", [branch_id]).fetchall()
    )
    placed = [
        r[0]
        for r in db.execute(
            "SELECT category FROM services WHERE branch_id = ? AND listed = 1", [branch_id]
        )
    ]
    try:
        tree.check(parents, placed, allow_empty=True)
    except tree.TreeError as exc:
        raise Rejected(str(exc)) from None


def _put_category(db: Tx, branch_id: str, category: dict) -> None:
    db.upsert(
        "categories",
        {
            "branch_id": branch_id,
            "id": category["id"],
            "names": json.dumps(category["names"], ensure_ascii=False),
            "position": int(category.get("position") or 0),
            "parent": category.get("parent"),
        },
        ["branch_id", "id"],
    )


def _put_counter_location(db: Tx, branch_id: str, counter: str, locations: dict) -> None:
    if not locations:
        db.execute(
            "DELETE FROM counter_locations WHERE branch_id = ? AND counter = ?",
            [branch_id, counter],
        )
        return
    db.upsert(
        "counter_locations",
        {
            "branch_id": branch_id,
            "counter": counter,
            "locations": json.dumps(locations, ensure_ascii=False),
        },
        ["branch_id", "counter"],
    )


def _schedule_fields(data: dict) -> dict:
    """The stored schedule JSON as protocol.Service keyword arguments."""
    return {
        "hours": data.get("hours"),
        "exceptions": data.get("exceptions") or {},
        "last_ticket_min": data.get("last_ticket_min") or 0,
    }


def _categories(db: Tx, branch_id: str) -> list[dict]:
    return [
        {"id": r[0], "names": json.loads(r[1]), "position": r[2], "parent": r[3]}
        for r in db.execute(
            "SELECT id, names, position, parent FROM categories WHERE branch_id = ? "
            "ORDER BY position, id",
            [branch_id],
        )
    ]


def _counter_locations(db: Tx, branch_id: str) -> dict[str, dict[str, str]]:
    return {
        r[0]: json.loads(r[1])
        for r in db.execute(
            "SELECT counter, locations FROM counter_locations WHERE branch_id = ? ORDER BY counter",
            [branch_id],
        )
    }


class Branches:
    database: Database

    def put_branch(self, branch: dict, services: list[dict] | None = None) -> None:
        """Create or update a branch and, when given, its services in that order
        (services left out are unlisted, kept for their old tickets). A branch
        with ``categories`` (a list) or ``counters`` (counter → where it is per
        language), as a branch file has, replaces those too."""
        with self.database.transaction() as db:
            row = {
                "id": branch["id"],
                "name": branch["name"],
                "timezone": branch["timezone"],
                "languages": json.dumps(branch.get("languages", ["en"])),
                "ticket_url_template": branch["ticket_url_template"],
                "updated_at": iso(now()),
            }
            if "remote_join" in branch:  # left out: the switch stays as it is
                row["remote_join"] = int(bool(branch["remote_join"]))
            db.upsert("branches", row, ["id"])
            if "categories" in branch:
                db.execute("DELETE FROM categories WHERE branch_id = ?", [branch["id"]])
                for category in branch["categories"]:
                    _put_category(db, branch["id"], category)
            if "counters" in branch:
                db.execute("DELETE FROM counter_locations WHERE branch_id = ?", [branch["id"]])
                for counter, locations in branch["counters"].items():
                    _put_counter_location(db, branch["id"], counter, locations)
            if "callbacks" in branch:
                callbacks.put_settings(db, branch["id"], branch["callbacks"])
            if services is not None:
                db.execute("UPDATE services SET listed = 0 WHERE branch_id = ?", [branch["id"]])
                for position, service in enumerate(services):
                    db.upsert(
                        "services",
                        _service_row(branch["id"], service, position),
                        ["branch_id", "id"],
                    )
            if "categories" in branch or services is not None:
                _check_tree(db, branch["id"])

    def add_branch(self, branch: dict, grant_to: int | None = None) -> None:
        """Create a new branch (no services yet); Rejected if the id is taken.
        ``grant_to``: a staff member (an organisation manager) who gets it among
        their further branches in the same transaction, so whoever creates a
        branch can manage it at once."""
        taken = Rejected(f"a branch {branch['id']!r} exists already")
        try:
            self._add_branch(branch, grant_to, taken)
        except sa.exc.IntegrityError:  # created at the same moment by someone else
            raise taken from None

    def _add_branch(self, branch: dict, grant_to: int | None, taken: Rejected) -> None:
        with self.database.transaction() as db:
            if db.execute("SELECT 1 FROM branches WHERE id = ?", [branch["id"]]).fetchone():
                raise taken
            db.insert(
                "branches",
                {
                    "id": branch["id"],
                    "name": branch["name"],
                    "timezone": branch["timezone"],
                    "languages": json.dumps(branch.get("languages", ["en"])),
                    "ticket_url_template": branch["ticket_url_template"],
                    "updated_at": iso(now()),
                    "remote_join": int(bool(branch.get("remote_join", False))),
                },
            )
            if grant_to is not None:
                db.insert("staff_branches", {"staff_id": grant_to, "branch_id": branch["id"]})

    def branch_names(self) -> dict[str, str]:
        """Every branch's id and name, by id (pickers and lists)."""
        with self.database.reading() as db:
            return dict(db.execute("SELECT id, name FROM branches ORDER BY id").fetchall())

    def put_service(self, branch_id: str, service: dict) -> None:
        """Add or change one service (as branch_file.check_service made it); a new one
        goes last on the kiosk's screen."""
        with self.database.transaction() as db:
            if not db.execute("SELECT 1 FROM branches WHERE id = ?", [branch_id]).fetchone():
                raise Rejected(f"no branch {branch_id!r}")
            clash = db.execute(
                "SELECT id FROM services WHERE branch_id = ? AND prefix = ? AND id != ?",
                [branch_id, service["prefix"], service["id"]],
            ).fetchone()
            if clash:
                raise Rejected(f"prefix {service['prefix']!r} is used by {clash[0]!r}")
            row = db.execute(
                "SELECT position, listed FROM services WHERE branch_id = ? AND id = ?",
                [branch_id, service["id"]],
            ).fetchone()
            position = (
                row[0]
                if row and row[1]
                else db.execute(
                    "SELECT COALESCE(MAX(position), -1) + 1 FROM services WHERE branch_id = ?",
                    [branch_id],
                ).fetchone()[0]
            )
            row = _service_row(branch_id, service, position)
            db.upsert("services", row, ["branch_id", "id"])
            _check_tree(db, branch_id)

    def put_category(self, branch_id: str, category: dict) -> None:
        """Add or change one category (as branch_file.check_category made it);
        Rejected for an unknown parent, a circle or a tree too deep."""
        with self.database.transaction() as db:
            if not db.execute("SELECT 1 FROM branches WHERE id = ?", [branch_id]).fetchone():
                raise Rejected(f"no branch {branch_id!r}")
            _put_category(db, branch_id, category)
            _check_tree(db, branch_id)

    def remove_category(self, branch_id: str, category_id: str) -> bool:
        """Remove a category; what was in it moves up to its parent (nothing is hidden)."""
        with self.database.transaction() as db:
            row = db.execute(
                "SELECT parent FROM categories WHERE branch_id = ? AND id = ?",
                [branch_id, category_id],
            ).fetchone()
            if row is None:
                return False
            for table, column in (("services", "category"), ("categories", "parent")):
                db.execute(
                    f"UPDATE {table} SET {column} = ? WHERE branch_id = ? AND {column} = ?",
                    [row[0], branch_id, category_id],
                )
            db.execute(
                "DELETE FROM categories WHERE branch_id = ? AND id = ?", [branch_id, category_id]
            )
        return True

    def categories(self, branch_id: str) -> list[dict]:
        """The branch's categories by position: id, names, position, parent."""
        with self.database.reading() as db:
            return _categories(db, branch_id)

    def set_counter_location(self, branch_id: str, counter: str, locations: dict) -> None:
        """Where a counter is, per language (checked by branch_file.locations); an
        empty table forgets it (its calls then say the service's place)."""
        with self.database.transaction() as db:
            if not db.execute("SELECT 1 FROM branches WHERE id = ?", [branch_id]).fetchone():
                raise Rejected(f"no branch {branch_id!r}")
            _put_counter_location(db, branch_id, counter, locations)

    def counter_locations(self, branch_id: str) -> dict[str, dict[str, str]]:
        """Counter → where it is, per language."""
        with self.database.reading() as db:
            return _counter_locations(db, branch_id)

    def remove_service(self, branch_id: str, service_id: str) -> bool:
        """Take a service off the kiosks; its tickets and numbers stay."""
        with self.database.transaction() as db:
            changed = db.execute(
                "UPDATE services SET listed = 0 WHERE branch_id = ? AND id = ? AND listed = 1",
                [branch_id, service_id],
            ).rowcount
        return changed == 1

    def branch_settings(self, branch_id: str) -> tuple[dict, list[dict]]:
        """The branch and its listed services, every field (management, export)."""
        with self.database.reading() as db:
            b = db.execute(
                "SELECT id, name, timezone, languages, ticket_url_template, remote_join "
                "FROM branches WHERE id = ?",
                [branch_id],
            ).fetchone()
            if b is None:
                raise Rejected(f"no branch {branch_id!r}")
            rows = db.execute(
                "SELECT id, prefix, names, texts, priority, is_open, schedule, daily_cap, "
                "category, locations FROM services WHERE branch_id = ? AND listed = 1 "
                "ORDER BY position",
                [branch_id],
            ).fetchall()
            categories = _categories(db, branch_id)
            counters = _counter_locations(db, branch_id)
            calls_back = callbacks.settings_of(db, branch_id)
        fields = ("id", "name", "timezone", "languages", "ticket_url_template", "remote_join")
        branch = dict(zip(fields, b, strict=True))
        branch["languages"] = json.loads(branch["languages"])
        branch["remote_join"] = bool(branch["remote_join"])
        branch["categories"] = categories
        branch["counters"] = counters
        branch["callbacks"] = calls_back
        services = [
            {
                "id": r[0],
                "prefix": r[1],
                "names": json.loads(r[2]),
                "texts": json.loads(r[3]),
                "priority": r[4],
                "is_open": bool(r[5]),
                "schedule": json.loads(r[6]),
                "daily_cap": r[7],
                "category": r[8],
                "locations": json.loads(r[9]),
            }
            for r in rows
        ]
        return branch, services

    def has_branch(self, branch_id: str) -> bool:
        with self.database.reading() as db:
            return (
                db.execute("SELECT 1 FROM branches WHERE id = ?", [branch_id]).fetchone()
                is not None
            )

    def kiosk_config(self, branch_id: str) -> protocol.KioskConfig:
        branch, services = self.branch_settings(branch_id)
        return protocol.KioskConfig(
            branch=protocol.Branch(
                id=branch["id"],
                name=branch["name"],
                timezone=branch["timezone"],
                languages=branch["languages"],
            ),
            services=[
                protocol.Service(
                    id=s["id"],
                    prefix=s["prefix"],
                    names=s["names"],
                    texts=s["texts"],
                    is_open=s["is_open"],
                    daily_cap=s["daily_cap"],
                    category=s["category"],
                    location=s["locations"],
                    **_schedule_fields(s["schedule"]),
                )
                for s in services
            ],
            categories=[
                protocol.Category(
                    id=c["id"], names=c["names"], position=c["position"], parent=c["parent"]
                )
                for c in branch["categories"]
            ],
            ticket_url_template=branch["ticket_url_template"],
        )

    @staticmethod
    def branch_today(db: Tx, branch_id: str) -> tuple[str, datetime]:
        """The branch-local date and the moment it began (its local midnight)."""
        return branch_today(db, branch_id)
