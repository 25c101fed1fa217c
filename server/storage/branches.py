"""Branches and their services: what the kiosks offer and the queues are of."""

from __future__ import annotations

import json
from datetime import datetime

from server.storage.common import Rejected, branch_today, iso, now
from server.storage.database import Database, Tx
from sync import protocol


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
        "listed": 1,
    }


def _schedule_fields(data: dict) -> dict:
    """The stored schedule JSON as protocol.Service keyword arguments."""
    return {
        "hours": data.get("hours"),
        "exceptions": data.get("exceptions") or {},
        "last_ticket_min": data.get("last_ticket_min") or 0,
    }


class Branches:
    database: Database

    def put_branch(self, branch: dict, services: list[dict] | None = None) -> None:
        """Create or update a branch and, when given, its services in that order
        (services left out are unlisted, kept for their old tickets)."""
        with self.database.transaction() as db:
            db.upsert(
                "branches",
                {
                    "id": branch["id"],
                    "name": branch["name"],
                    "timezone": branch["timezone"],
                    "languages": json.dumps(branch.get("languages", ["en"])),
                    "ticket_url_template": branch["ticket_url_template"],
                    "updated_at": iso(now()),
                },
                ["id"],
            )
            if services is None:
                return
            db.execute("UPDATE services SET listed = 0 WHERE branch_id = ?", [branch["id"]])
            for position, service in enumerate(services):
                db.upsert(
                    "services", _service_row(branch["id"], service, position), ["branch_id", "id"]
                )

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
                "SELECT id, name, timezone, languages, ticket_url_template FROM branches "
                "WHERE id = ?",
                [branch_id],
            ).fetchone()
            if b is None:
                raise Rejected(f"no branch {branch_id!r}")
            rows = db.execute(
                "SELECT id, prefix, names, texts, priority, is_open, schedule, daily_cap "
                "FROM services WHERE branch_id = ? AND listed = 1 ORDER BY position",
                [branch_id],
            ).fetchall()
        fields = ("id", "name", "timezone", "languages", "ticket_url_template")
        branch = dict(zip(fields, b, strict=True))
        branch["languages"] = json.loads(branch["languages"])
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
                    **_schedule_fields(s["schedule"]),
                )
                for s in services
            ],
            ticket_url_template=branch["ticket_url_template"],
        )

    @staticmethod
    def branch_today(db: Tx, branch_id: str) -> tuple[str, datetime]:
        """The branch-local date and the moment it began (its local midnight)."""
        return branch_today(db, branch_id)
