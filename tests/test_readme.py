"""README's steps for technicians agree with what `make install` really ships:
a technician following README must end up with the rules and groups the
appliance uses, not a second, contradicting set."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
INSTALL = (ROOT / "tools" / "install.sh").read_text(encoding="utf-8")
SYSUSERS = (ROOT / "systemd" / "vuoro.sysusers").read_text(encoding="utf-8")
UDEV_DIR = "/etc/udev/rules.d/"


def installed_udev_rules() -> dict[str, Path]:
    """Installed name -> shipped file, as tools/install.sh copies them."""
    found = re.findall(
        r'"\$src/(systemd/[\w.-]+\.rules)"\s+"\$root' + re.escape(UDEV_DIR) + r'([\w.-]+)"',
        INSTALL,
    )
    return {name: ROOT / source for source, name in found}


def groups_in(text: str) -> set[str]:
    return set(re.findall(r'GROUP\s*:?=\s*"([^"]+)"', text))


def vuoro_groups() -> set[str]:
    own = {"vuoro"} if re.search(r"^u\s+vuoro\s", SYSUSERS, re.M) else set()
    return own | set(re.findall(r"^m\s+vuoro\s+(\S+)", SYSUSERS, re.M))


def test_the_udev_rules_readme_names_are_the_ones_make_install_ships():
    shipped = installed_udev_rules()
    assert shipped, "install.sh installs a udev rule"
    for name, source in shipped.items():
        assert source.is_file(), f"install.sh copies {source}, which is missing"
        assert name in README, f"README does not name the installed rule {name}"
    named = set(re.findall(r"\b\d\d-vuoro-[\w-]+\.rules\b", README))
    udev_named = {n for n in named if not (ROOT / "systemd" / n).is_file() or n in shipped}
    for name in udev_named - set(shipped):
        # a technician's own rule: never written by make install, and read after ours
        assert name not in INSTALL, f"README's own-rule file {name} is overwritten by install"
        assert name > max(shipped), f"README's {name} is read before {max(shipped)}, not after"


def test_readme_gives_printers_the_group_the_shipped_rules_and_the_kiosk_user_use():
    shipped_groups = set().union(
        *(groups_in(p.read_text()) for p in installed_udev_rules().values())
    )
    assert shipped_groups and shipped_groups <= vuoro_groups()
    readme_groups = groups_in(README)
    assert readme_groups, "README shows a rule for a printer the shipped one does not match"
    assert readme_groups <= shipped_groups, (
        f"README gives printers to {readme_groups - shipped_groups}; the shipped rule to "
        f"{shipped_groups}"
    )
    for group in re.findall(r"usermod -aG (\S+) vuoro", README):
        assert group in vuoro_groups(), f"README adds vuoro to {group}; sysusers does not"


def test_readme_rule_lines_are_well_formed_udev():
    lines = [line for line in README.splitlines() if line.startswith("SUBSYSTEM")]
    assert lines
    pair = re.compile(r'^[A-Z]+(\{[\w.-]+\})?(==|!=|=|\+=|:=)"[^"]*"$')
    for line in lines:
        for part in line.split(", "):
            assert pair.match(part.strip()), f"not a udev key: {part!r} in {line!r}"
