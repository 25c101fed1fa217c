"""Numbers: each service's counter per day, handed to kiosks in leased blocks."""

from __future__ import annotations

from datetime import timedelta

from server.storage.common import Rejected, iso, now, zone
from server.storage.database import Database, Tx
from sync import protocol

#: Numbers one kiosk may hold leased and unused per service and day: a kiosk asks
#: for 100 at a time (at most 1,000); more than this is not a kiosk's need.
LEASE_UNUSED_MAX = 2000
LEASE_MIDNIGHT_SLACK_MIN = 10


class Numbering:
    database: Database

    def lease(self, kiosk: dict, request: protocol.LeaseRequest) -> protocol.LeaseResponse:
        """A block of numbers from the branch's counter: no one else gets them."""
        with self.database.transaction() as db:
            db.lock_row("kiosks", "id", kiosk["id"])  # its unused numbers, counted below
            self._check_service(db, kiosk["branch_id"], request.service_id)
            self._check_day(db, kiosk["branch_id"], request.day)
            self._forget_old_leases(db, kiosk["branch_id"])
            self._check_unused(db, kiosk, request)
            first = self._take(
                db, kiosk["branch_id"], request.service_id, request.day, request.count
            )
            db.insert(
                "leases",
                {
                    "kiosk_id": kiosk["id"],
                    "branch_id": kiosk["branch_id"],
                    "service_id": request.service_id,
                    "day": request.day,
                    "first": first,
                    "last": first + request.count - 1,
                    "created_at": iso(now()),
                },
            )
        return protocol.LeaseResponse(
            service_id=request.service_id,
            day=request.day,
            first=first,
            last=first + request.count - 1,
        )

    def _check_unused(self, db: Tx, kiosk: dict, request: protocol.LeaseRequest) -> None:
        """A kiosk holds at most ``LEASE_UNUSED_MAX`` unused numbers per service and
        day: asking on and on would run the day's counter into the millions."""
        leased = db.execute(
            "SELECT COALESCE(SUM(last - first + 1), 0) FROM leases "
            "WHERE kiosk_id = ? AND service_id = ? AND day = ?",
            [kiosk["id"], request.service_id, request.day],
        ).fetchone()[0]
        used = db.execute(
            "SELECT COUNT(*) FROM tickets WHERE branch_id = ? AND service_id = ? AND day = ? "
            "AND series = '' AND kiosk_id = ?",
            [kiosk["branch_id"], request.service_id, request.day, kiosk["id"]],
        ).fetchone()[0]
        unused = max(int(leased) - used, 0)
        if unused + request.count > LEASE_UNUSED_MAX:
            raise Rejected(
                f"lease_cap:{unused} numbers leased and unused; at most {LEASE_UNUSED_MAX}"
            )

    def _forget_old_leases(self, db: Tx, branch_id: str) -> None:
        """Leases of the branch's days before yesterday: no ticket of those days is
        taken any more (:func:`ingest_days`), so they would only grow the table."""
        yesterday = now().astimezone(zone(db, branch_id)).date() - timedelta(days=1)
        db.execute(
            "DELETE FROM leases WHERE branch_id = ? AND day < ?", [branch_id, yesterday.isoformat()]
        )

    @staticmethod
    def _take(db: Tx, branch_id: str, service_id: str, day: str, count: int) -> int:
        """The first of ``count`` numbers from the day's counter, in one statement:
        two workers leasing at once each get their own block."""
        return db.execute(
            "INSERT INTO counters (branch_id, service_id, day, next) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (branch_id, service_id, day) DO UPDATE SET next = counters.next + ? "
            "RETURNING next - ?",
            [branch_id, service_id, day, 1 + count, count, count],
        ).scalar_one()

    @staticmethod
    def _check_service(db: Tx, branch_id: str, service_id: str) -> None:
        if (
            db.execute(
                "SELECT 1 FROM services WHERE branch_id = ? AND id = ?", [branch_id, service_id]
            ).fetchone()
            is None
        ):
            raise Rejected(f"unknown_service:{service_id}")

    def _check_day(self, db: Tx, branch_id: str, day: str) -> None:
        """Numbers are leased for today only: a kiosk whose clock says another day
        would print them for a queue nobody calls. Around midnight a kiosk a few
        minutes off may still ask for the day next to today."""
        branch_zone = zone(db, branch_id)
        slack = timedelta(minutes=LEASE_MIDNIGHT_SLACK_MIN)
        days = {
            (now() + shift).astimezone(branch_zone).date().isoformat() for shift in (-slack, slack)
        }
        if day not in days:
            raise Rejected(f"day_out_of_range:{day}")
