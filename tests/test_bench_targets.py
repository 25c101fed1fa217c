"""The benchmark checker itself (bench/targets.py): a figure on the wrong side of
its target, or a missing row, must fail `make bench-check`, so the checker
cannot pass everything in silence. The benchmarks' speed is judged by
`make bench-check` alone; tiny runs under `make test` prove nothing about it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import targets
from bench.targets import MISSING, PASS, SHORT, Target

ROOT = Path(__file__).resolve().parent.parent
AT_MOST = Target("row", "ms", "<=", 10, "why")
AT_LEAST = Target("row", "ratio", ">=", 0.7, "why")


def meeting_every_target() -> dict[str, dict[str, float]]:
    """Figures exactly on each shipped target: the edge still passes."""
    results: dict[str, dict[str, float]] = {}
    for t in targets.TARGETS:
        results.setdefault(t.row, {})[t.figure] = t.value
    return results


@pytest.mark.parametrize(
    ("target", "measured", "outcome"),
    [
        (AT_MOST, 9.9, PASS),
        (AT_MOST, 10, PASS),
        (AT_MOST, 10.1, SHORT),
        (AT_LEAST, 0.71, PASS),
        (AT_LEAST, 0.7, PASS),
        (AT_LEAST, 0.69, SHORT),
    ],
)
def test_a_figure_passes_on_its_side_of_the_target_and_falls_short_on_the_other(
    target, measured, outcome
):
    (verdict,) = targets.judge({"row": {target.figure: measured}}, [target])
    assert verdict.outcome == outcome


def test_a_missing_row_or_figure_is_not_a_pass():
    assert targets.judge({}, [AT_MOST])[0].outcome == MISSING
    assert targets.judge({"row": {"p99_ms": 1}}, [AT_MOST])[0].outcome == MISSING
    assert targets.shortfalls(targets.judge({}, [AT_MOST, AT_LEAST])) != []


def write_run(tmp_path: Path, results: dict) -> Path:
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(targets.report(results)))
    return path


def test_check_mode_exits_0_only_when_every_shipped_target_is_met(tmp_path, capsys):
    good = meeting_every_target()
    assert targets.main(["--check", str(write_run(tmp_path, good))]) == 0
    assert json.loads((tmp_path / "latest.json").read_text())["targets_met"] is True

    for t in targets.TARGETS:
        worse = json.loads(json.dumps(good))
        worse[t.row][t.figure] = t.value * (2 if t.op == "<=" else 0.5)
        assert targets.main(["--check", str(write_run(tmp_path, worse))]) == 1, t
        assert f"FALLS SHORT: {t.row}: {t}" in capsys.readouterr().out
        # without --check the table is printed and the run still exits 0
        assert targets.main([str(write_run(tmp_path, worse))]) == 0

    row = targets.TARGETS[0].row
    without = {r: f for r, f in good.items() if r != row}
    assert targets.main(["--check", str(write_run(tmp_path, without))]) == 1
    assert f"MISSING: {row}" in capsys.readouterr().out


def test_check_mode_fails_without_a_run(tmp_path):
    assert targets.main(["--check", str(tmp_path / "absent.json")]) != 0


def test_the_table_shows_each_rows_target_and_verdict():
    results = meeting_every_target() | {"trivial endpoint (/healthz)": {"req_per_s": 1}}
    results["sync backlog 6000"]["seconds"] = 31
    text = targets.table(results, targets.judge(results))
    assert "seconds <= 30: FALLS SHORT" in text
    assert "requests <= 100: pass" in text
    assert "no target (the yardstick" in text
    assert f"{len(targets.TARGETS) - 1} of {len(targets.TARGETS)} targets met" in text
    assert "not compared" in targets.table(results, None)


def test_readme_states_every_target_and_no_row_is_both_targeted_and_informational():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for t in targets.TARGETS:
        assert f"`{t}`" in readme and t.row in readme, f"README does not state {t.row}: {t}"
    assert not {t.row for t in targets.TARGETS} & set(targets.NO_TARGET)
