#!/usr/bin/env bash
# `make install`: the app in its own venv under $PREFIX, and the units, users,
# rules and default config where systemd, udev and polkit look for them.
#
#   DESTDIR   stage into this root instead of / (image builds, tests)
#   PREFIX    where the app lives (default /opt/vuoro)
#   EXTRAS    pip extras: "server" on a queue-server host (default: none)
#   PYTHON    the interpreter for the venv (default python3)
set -euo pipefail
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/opt/vuoro}
EXTRAS=${EXTRAS:-}
PYTHON=${PYTHON:-python3}
src=$(cd "$(dirname "$0")/.." && pwd)
root=${DESTDIR%/}
venv="$root$PREFIX/venv"

echo "installing Vuoro into ${DESTDIR:-/} (app in $PREFIX)"
install -d -m 0755 "$root$PREFIX"
# What the venv is built from: the checkout's files, the extras and the
# interpreter. A reinstall of the very same code keeps the venv (a minute of a
# Pi's time); anything else, or a tree that is not a git checkout, rebuilds it.
source_id=""
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    source_id=$( { "$PYTHON" --version; echo "extras=$EXTRAS"
        git -C "$src" ls-files -z -co --exclude-standard \
            | (cd "$src" && xargs -0 -r sha256sum 2>/dev/null || true); } | sha256sum | cut -d" " -f1)
fi
if [ -n "$source_id" ] && [ "$(cat "$venv/.vuoro-source" 2>/dev/null)" = "$source_id" ] \
    && "$venv/bin/python" -c "import kiosk, sync, printer" 2>/dev/null; then
    echo "the app in $PREFIX/venv is this very checkout: kept"
else
    "$PYTHON" -m venv --clear "$venv"
    # uv where the checkout's `make venv` (or the system) has it: the same
    # packages in seconds; pip otherwise (a Pi image build)
    uv=$(command -v uv || true)
    [ -n "$uv" ] || [ ! -x "$src/.venv/bin/uv" ] || uv="$src/.venv/bin/uv"
    if [ -n "$uv" ]; then
        "$uv" pip install --quiet --compile-bytecode --python "$venv/bin/python" "$src${EXTRAS:+[$EXTRAS]}"
        rm -f "$venv/.lock"  # uv's lock file, writable by anyone: nothing to leave installed
    else
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "$src${EXTRAS:+[$EXTRAS]}"
    fi
    # the translations' .mo files, stamped with their PO's digest (catalogue/__init__.py)
    "$venv/bin/python" -I -m catalogue compile >/dev/null
    if [ -n "$root" ]; then
        # a staged venv runs from $PREFIX once the image is flashed: fix its #! lines
        grep -lrZ --include='*' "^#!$venv/bin/" "$venv/bin" \
            | xargs -0 -r sed -i "1s|^#!$venv/bin/|#!$PREFIX/venv/bin/|"
        sed -i "s|$venv|$PREFIX/venv|g" "$venv"/bin/activate*
    fi
    [ -z "$source_id" ] || echo "$source_id" > "$venv/.vuoro-source"
fi
install -m 0644 "$src/README.md" "$root$PREFIX/README.md"

install -d -m 0755 "$root/etc/systemd/system" "$root/etc/sysusers.d" "$root/etc/tmpfiles.d" \
    "$root/etc/udev/rules.d" "$root/etc/polkit-1/rules.d" "$root/etc/pam.d"
for unit in vuoro-kiosk vuoro-sync vuoro-server vuoro-display; do
    sed "s|@PREFIX@|$PREFIX|g" "$src/systemd/$unit.service" > "$root/etc/systemd/system/$unit.service"
    chmod 0644 "$root/etc/systemd/system/$unit.service"
done
install -m 0644 "$src/systemd/vuoro.sysusers" "$root/etc/sysusers.d/vuoro.conf"
install -m 0644 "$src/systemd/vuoro.tmpfiles" "$root/etc/tmpfiles.d/vuoro.conf"
install -m 0644 "$src/systemd/70-vuoro-printer.rules" "$root/etc/udev/rules.d/70-vuoro-printer.rules"
install -m 0644 "$src/systemd/50-vuoro-power.rules" "$root/etc/polkit-1/rules.d/50-vuoro-power.rules"
install -m 0644 "$src/systemd/vuoro-display.pam" "$root/etc/pam.d/vuoro-display"

# config: never overwrite what a technician wrote; readable by the vuoro group only
install -d -m 0750 "$root/etc/vuoro"
for file in kiosk.toml sync.env display.env; do
    if [ ! -e "$root/etc/vuoro/$file" ]; then
        install -m 0640 "$src/systemd/$file" "$root/etc/vuoro/$file"
    fi
done
install -d -m 0750 "$root/var/lib/vuoro"

if [ -z "$root" ] && [ "$(id -u)" = 0 ] && [ -d /run/systemd/system ]; then
    systemd-sysusers /etc/sysusers.d/vuoro.conf
    systemd-tmpfiles --create /etc/tmpfiles.d/vuoro.conf
    udevadm control --reload-rules || true
    systemctl daemon-reload
    echo "now: systemctl enable --now vuoro-kiosk vuoro-sync   (a kiosk)"
    echo "  or systemctl enable --now vuoro-display              (a calling display)"
    echo "  or systemctl enable --now vuoro-server               (a server host)"
fi
