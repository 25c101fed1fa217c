"""`make mutation`: mutmut over the modules that keep the promises, and a score per module.

mutmut (configured in setup.cfg's [mutmut]) copies the code to mutants/, mutates
every function of the files in `only_mutate` and, for each mutant, runs only the
fast in-process tests that reach the function, fastest first, stopping at the
first failure. This script runs it with one worker on the mutants below, then
prints killed / survived / timeout / other / total per module and writes the
table and the names of the survivors to var/mutation/. `mutmut show NAME`
prints a mutant's diff; tests/MUTANTS.md explains the survivors that stay.

    python tools/mutation.py            run (resumes: mutmut keeps its results)
    python tools/mutation.py --report   the table of the last run only
    python tools/mutation.py --fresh    forget earlier results first
    python tools/mutation.py sync/exchange.py kiosk/guard.py   only these modules
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "mutation"

# module (as in the report) -> its source file and the mutant names that count
MODULES = {
    "sync/tickets.py": ("sync/tickets.py", ["sync.tickets.*"]),
    "sync/exchange.py": ("sync/exchange.py", ["sync.exchange.*"]),
    "kiosk/issuing.py": ("kiosk/issuing.py", ["kiosk.issuing.*"]),
    "kiosk/guard.py": ("kiosk/guard.py", ["kiosk.guard.*"]),
    "server/storage/ingest.py": ("server/storage/ingest.py", ["server.storage.ingest.*"]),
    "server/storage/numbering.py": (
        "server/storage/numbering.py",
        ["server.storage.numbering.*"],
    ),
    "server/storage/calling.py": ("server/storage/calling.py", ["server.storage.calling.*"]),
}

STATUS = {1: "killed", 3: "killed", 0: "survived", 36: "timeout", 24: "timeout", -24: "timeout"}
STATUS.update({152: "timeout", 255: "timeout", None: "not checked", 5: "no tests", 33: "no tests"})


def status_of(exit_code: int | None) -> str:
    return STATUS.get(exit_code, "other")


def patterns(modules: list[str]) -> list[str]:
    chosen = [m for m in MODULES if not modules or any(m.startswith(x) for x in modules)]
    return [p for m in chosen for p in MODULES[m][1]]


def results() -> dict[str, dict[str, str]]:
    """module -> {mutant name: status}, from mutmut's files under mutants/."""
    by_module: dict[str, dict[str, str]] = {}
    for module, (path, names) in MODULES.items():
        meta = ROOT / "mutants" / f"{path}.meta"
        codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
        by_module[module] = {
            key: status_of(code)
            for key, code in sorted(codes.items())
            if any(fnmatch.fnmatch(key, pattern) for pattern in names)
        }
    return by_module


def table(by_module: dict[str, dict[str, str]]) -> str:
    head = f"{'module':<46} {'killed':>6} {'survived':>8} {'timeout':>7} {'other':>5} {'total':>5}"
    head += "  score"
    lines = [head, "-" * len(head)]
    for module, statuses in by_module.items():
        count = Counter(statuses.values())
        total = len(statuses)
        other = total - count["killed"] - count["survived"] - count["timeout"]
        caught = count["killed"] + count["timeout"]
        score = f"{100 * caught / total:5.1f}%" if total else "    -"
        lines.append(
            f"{module:<46} {count['killed']:>6} {count['survived']:>8} {count['timeout']:>7}"
            f" {other:>5} {total:>5}  {score}"
        )
    lines.append("score = (killed + timeout) / total; other = no tests, not checked, suspicious")
    return "\n".join(lines)


def run(fresh: bool, modules: list[str]) -> float:
    if fresh:
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    mutmut = Path(sys.executable).parent / "mutmut"
    started = time.monotonic()
    # One worker: the machine is shared; mutmut forks a child per mutant.
    subprocess.run(
        [str(mutmut), "run", "--max-children", "1", *patterns(modules)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "VUORO_CLOCK_SYNCED": "1"},
    )
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only print the last run's table")
    parser.add_argument("--fresh", action="store_true", help="forget mutmut's earlier results")
    parser.add_argument("modules", nargs="*", help="run only these (a prefix of the path)")
    args = parser.parse_args()
    seconds = None if args.report else run(args.fresh, args.modules)
    by_module = results()
    text = table(by_module)
    if seconds is not None:
        text += f"\nrun took {seconds / 60:.1f} min (one worker)"
    print("\n" + text)
    survivors = {
        module: [name for name, status in statuses.items() if status not in ("killed", "timeout")]
        for module, statuses in by_module.items()
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.txt").write_text(text + "\n")
    (OUT / "report.json").write_text(
        json.dumps({"seconds": seconds, "results": by_module, "not_killed": survivors}, indent=1)
    )
    print(f"\nwritten to {OUT.relative_to(ROOT)}/report.txt and report.json")
    print("`mutmut show NAME` prints a mutant's diff; tests/MUTANTS.md explains the survivors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
