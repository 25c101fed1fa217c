"""`make soak`: the seeded fault-injection scenario, many times (200 by default).

Prints a line per seed and a summary, writes var/bench/soak.json, and exits
non-zero if any seed broke an invariant (its work folder is kept).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.chaos import run_scenario


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    failures, outcomes = [], []
    faults, kills = Counter(), Counter()
    started = time.monotonic()
    for seed in range(args.first, args.first + args.seeds):
        workdir = Path(tempfile.mkdtemp(prefix=f"vuoro-soak-{seed}-"))
        try:
            outcome = run_scenario(seed, workdir, args.steps)
        except Exception as exc:  # an invariant or the harness: keep the evidence
            failures.append({"seed": seed, "error": repr(exc)[:500], "workdir": str(workdir)})
            print(f"seed {seed}: FAILED {exc!r:.200} (kept {workdir})", flush=True)
            continue
        shutil.rmtree(workdir, ignore_errors=True)
        outcomes.append(outcome.__dict__)
        faults.update(outcome.faults)
        kills.update(outcome.kills)
        print(
            f"seed {seed}: {outcome.issued} tickets, {outcome.requests} requests, "
            f"kills {dict(outcome.kills)}, {outcome.seconds} s",
            flush=True,
        )
    summary = {
        "seeds": args.seeds,
        "failed": len(failures),
        "tickets": sum(o["issued"] for o in outcomes),
        "requests": sum(o["requests"] for o in outcomes),
        "faults": dict(faults),
        "kills": dict(kills),
        "seconds": round(time.monotonic() - started, 1),
        "failures": failures,
    }
    out = Path("var/bench/soak.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
