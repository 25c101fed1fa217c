"""The kiosk's pairing with its server: written once by ``vuoro-sync pair``.

Kept in a file of its own (0600), beside the state DB rather than in it: the
token must not travel with a copy of the DB, and a damaged DB can be rebuilt
knowing which server and reserve series the kiosk belongs to.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

CREDENTIALS = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    server: str
    kiosk_id: str
    branch_id: str
    token: str
    reserve_tag: str
    ca_bundle: str | None = None

    @classmethod
    def load(cls, state_dir: Path) -> Credentials | None:
        try:
            return cls(**json.loads((state_dir / CREDENTIALS).read_text()))
        except FileNotFoundError:
            return None

    def save(self, state_dir: Path) -> None:
        """0600 from the start: the token is never readable by others, not even briefly."""
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = state_dir / f".{CREDENTIALS}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.__dict__, f)
        os.replace(tmp, state_dir / CREDENTIALS)
