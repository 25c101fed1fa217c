"""`make install DESTDIR=...` into a staged root: every file where the units
expect it, permissions right, the units verified and their exposure scored by
systemd-analyze, users and directories made by systemd's own tools, and the
polkit rule evaluated in a real JavaScript engine."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ("vuoro-kiosk", "vuoro-sync", "vuoro-server")
SECURITY_THRESHOLD = 20  # systemd-analyze's 0-100 scale: exposure 2.0 and below, "OK"


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def stage(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stage")
    made = run(
        "make",
        "--no-print-directory",
        "install",
        f"DESTDIR={root}",
        "PREFIX=/opt/vuoro",
        cwd=ROOT,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    # the target OS's own units (sysinit.target, ...), as on Raspberry Pi OS
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    return root


def unit_paths() -> list[str]:
    return [f"/etc/systemd/system/{unit}.service" for unit in UNITS]


def test_systemd_analyze_verify_finds_nothing(stage):
    checked = run("systemd-analyze", "verify", f"--root={stage}", *unit_paths())
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", (
        "warnings are fatal:\n" + checked.stdout + checked.stderr
    )


def test_verify_would_catch_a_missing_program_and_a_bad_setting(stage):
    unit = stage / "etc/systemd/system/broken.service"
    text = (stage / "etc/systemd/system/vuoro-sync.service").read_text()
    unit.write_text(text.replace("vuoro-sync run", "vuoro-sink run"))
    try:
        missing = run(
            "systemd-analyze", "verify", f"--root={stage}", "/etc/systemd/system/broken.service"
        )
        assert "is not executable" in missing.stderr
        unit.write_text(text.replace("WatchdogSec=90", "WatchdogSec=soon"))
        bad = run(
            "systemd-analyze", "verify", f"--root={stage}", "/etc/systemd/system/broken.service"
        )
        assert "Failed to parse" in bad.stderr
    finally:
        unit.unlink()


def test_every_unit_meets_the_security_threshold(stage):
    scores = {}
    for path in unit_paths():
        scored = run(
            "systemd-analyze",
            "security",
            "--offline=true",
            f"--root={stage}",
            f"--threshold={SECURITY_THRESHOLD}",
            "--no-pager",
            path,
        )
        found = re.search(r"Overall exposure level for \S+: ([\d.]+)", scored.stdout)
        assert found, scored.stdout + scored.stderr
        scores[Path(path).stem] = float(found.group(1))
        assert scored.returncode == 0, f"{path}: {found.group(0)}"
    print("\nsystemd-analyze security exposure:", scores)
    assert all(score <= SECURITY_THRESHOLD / 10 for score in scores.values())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_where_the_units_expect_them_and_private(stage):
    for unit in UNITS:
        text = (stage / f"etc/systemd/system/{unit}.service").read_text()
        program = re.search(r"^ExecStart=(\S+)", text, re.M).group(1)
        assert (stage / program.lstrip("/")).is_file(), program
        assert "@PREFIX@" not in text
    for path, wanted in {
        "etc/vuoro": 0o750,
        "etc/vuoro/kiosk.toml": 0o640,
        "etc/vuoro/sync.env": 0o640,
        "var/lib/vuoro": 0o750,
        "etc/sysusers.d/vuoro.conf": 0o644,
        "etc/tmpfiles.d/vuoro.conf": 0o644,
        "etc/udev/rules.d/70-vuoro-printer.rules": 0o644,
        "etc/polkit-1/rules.d/50-vuoro-power.rules": 0o644,
        "opt/vuoro/README.md": 0o644,
    }.items():
        assert mode(stage / path) == wanted, f"{path}: {oct(mode(stage / path))}"
    world_writable = [
        str(p)
        for p in stage.rglob("*")
        if not p.is_symlink() and "usr/lib/systemd" not in str(p) and mode(p) & 0o002
    ]
    assert world_writable == []
    kiosk = stage / "opt/vuoro/venv/bin/vuoro-kiosk"
    assert kiosk.read_text().splitlines()[0] == "#!/opt/vuoro/venv/bin/python", "runs once flashed"
    assert str(stage) not in (stage / "opt/vuoro/venv/bin/activate").read_text()


def test_the_shipped_config_is_valid_and_a_reinstall_keeps_it(stage):
    python = stage / "opt/vuoro/venv/bin/python"
    checked = run(
        str(python),
        "-m",
        "kiosk.cli",
        "--check-config",
        "--config",
        str(stage / "etc/vuoro/kiosk.toml"),
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = stage / "etc/vuoro/kiosk.toml"
    config.write_text(config.read_text() + "\n# the technician's edit\n")
    again = run("tools/install.sh", cwd=ROOT, env=os.environ | {"DESTDIR": str(stage)})
    assert again.returncode == 0, again.stderr
    assert config.read_text().endswith("# the technician's edit\n")


def test_sysusers_and_tmpfiles_make_the_user_and_fix_owners(stage):
    """Setting owners needs root, as CI and `make test` here run."""
    assert os.geteuid() == 0, "run as root: systemd-tmpfiles sets owners"
    made = run("systemd-sysusers", f"--root={stage}", "vuoro.conf")
    assert made.returncode == 0, made.stderr
    passwd = (stage / "etc/passwd").read_text()
    user = next(line for line in passwd.splitlines() if line.startswith("vuoro:"))
    assert user.split(":")[5] == "/var/lib/vuoro"
    groups = (stage / "etc/group").read_text()
    for group in ("video", "render", "input", "lp", "dialout"):
        line = next(g for g in groups.splitlines() if g.startswith(f"{group}:"))
        assert "vuoro" in line.split(":")[3], group
    uid, gid = int(user.split(":")[2]), int(user.split(":")[3])
    credentials = stage / "var/lib/vuoro/credentials.json"
    credentials.write_text("{}")
    os.chown(credentials, uid, gid)  # the daemon runs as vuoro
    credentials.chmod(0o644)  # as if made carelessly
    fixed = run("systemd-tmpfiles", f"--root={stage}", "--create", "vuoro.conf")
    assert fixed.returncode == 0, fixed.stderr
    assert (stage / "var/lib/vuoro").stat().st_uid == uid
    assert mode(credentials) == 0o600, "the token: its owner only"
    assert (stage / "etc/vuoro/kiosk.toml").stat().st_gid == gid
    assert mode(stage / "etc/vuoro/kiosk.toml") == 0o640


POLKIT_CASES = [
    ("vuoro", "org.freedesktop.login1.reboot", "yes"),
    ("vuoro", "org.freedesktop.login1.power-off", "yes"),
    ("vuoro", "org.freedesktop.login1.reboot-multiple-sessions", "yes"),
    ("vuoro", "org.freedesktop.systemd1.manage-units", "not_handled"),
    ("vuoro", "org.freedesktop.login1.set-wall-message", "not_handled"),
    ("pi", "org.freedesktop.login1.reboot", "not_handled"),
    ("root", "org.freedesktop.login1.power-off", "not_handled"),
]


def test_the_polkit_rule_lets_only_vuoro_reboot_and_power_off(browser, stage):
    """The rule file run as polkitd runs it: a script calling polkit.addRule."""
    rule = (stage / "etc/polkit-1/rules.d/50-vuoro-power.rules").read_text()
    page = browser.new_page()
    results = page.evaluate(
        """([rule, cases]) => {
            const rules = [];
            const polkit = { Result: { YES: "yes", NO: "no", NOT_HANDLED: "not_handled" },
                             addRule: (f) => rules.push(f) };
            new Function("polkit", rule)(polkit);
            return cases.map(([user, id]) => rules[0]({ id }, { user }));
        }""",
        [rule, [[user, action] for user, action, _ in POLKIT_CASES]],
    )
    assert results == [expected for _, _, expected in POLKIT_CASES]


IMAGE = ROOT / "systemd" / "image" / "stage-vuoro"


def test_the_image_stage_scripts_parse_and_its_unit_verifies(stage):
    scripts = [*IMAGE.rglob("*.sh"), IMAGE / "02-data-partition/files/vuoro-data-partition"]
    for script in scripts:
        parsed = run("bash", "-n", str(script))
        assert parsed.returncode == 0, f"{script}: {parsed.stderr}"
        assert os.access(script, os.X_OK), f"{script} is not executable"
    files = IMAGE / "02-data-partition/files"
    (stage / "usr/local/sbin").mkdir(parents=True, exist_ok=True)
    shutil.copy(files / "vuoro-data-partition", stage / "usr/local/sbin/")
    shutil.copy(files / "vuoro-data-partition.service", stage / "etc/systemd/system/")
    checked = run(
        "systemd-analyze",
        "verify",
        f"--root={stage}",
        "/etc/systemd/system/vuoro-data-partition.service",
    )
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", checked.stderr
