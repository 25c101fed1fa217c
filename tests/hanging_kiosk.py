"""The real kiosk, except that its home screen's periodic refresh hangs forever
once the file named by ``$VUORO_HANG_WHEN`` exists: a UI handler stuck as a bug
or a stuck read would leave it. For the watchdog test only."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from kiosk import app, cli

_refresh = app.KioskApp.refresh


def refresh(self) -> None:
    if Path(os.environ["VUORO_HANG_WHEN"]).exists():
        time.sleep(3600)  # the Kivy main loop is blocked from here on
    _refresh(self)


if __name__ == "__main__":
    app.KioskApp.refresh = refresh
    sys.exit(cli.main())
