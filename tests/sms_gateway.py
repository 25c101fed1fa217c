"""An HTTP SMS gateway stand-in, run as a process of its own:
``python -m tests.sms_gateway PORT DIRECTORY``.

Each POST is recorded as one JSON file in DIRECTORY (its headers and body)
before it is answered. A control file ``DIRECTORY/fail`` holding a number K
makes the next K requests answer 503 (recorded all the same, the number
counted down); ``DIRECTORY/answer`` holding a status (e.g. 400) makes
every request answer it while the file is there; a control file
``DIRECTORY/hang`` makes each request wait, recorded but unanswered, until
the file is removed (a provider that took a message and has not said so yet)."""

from __future__ import annotations

import itertools
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_seq = itertools.count(1)


def main(port: int, directory: Path) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), 100_000)
            body = self.rfile.read(length).decode("utf-8", "replace")
            control = directory / "fail"
            failing = int(control.read_text() or 0) if control.exists() else 0
            answer = directory / "answer"
            status = 503 if failing > 0 else 202
            if answer.exists():
                status = int(answer.read_text() or 202)
            if failing > 0:
                control.write_text(str(failing - 1))
            record = {"headers": dict(self.headers), "body": body, "status": status}
            (directory / f"request-{next(_seq):04d}.json").write_text(json.dumps(record))
            deadline = time.monotonic() + 120
            while (directory / "hang").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
