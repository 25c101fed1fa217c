#!/bin/bash -e
# Vuoro into the image: `make install` inside the chroot (DESTDIR empty there),
# the fleet's settings from the build's environment, the services enabled.
#   VUORO_SRC           the Vuoro checkout to install (required)
#   VUORO_ROLE          kiosk (default): vuoro-kiosk and vuoro-sync;
#                       display: vuoro-display, a calling display on a TV
#   VUORO_SERVER        the queue server kiosks pair with (admin menu: Pair)
#                       and displays show the /display page of
#   VUORO_ADMIN_PIN     the admin menu's PIN for this fleet (4-12 digits; hashed here)
#   VUORO_DISPLAY_CODE  a display's pairing code, used on its first start (optional)
: "${VUORO_SRC:?set VUORO_SRC to a Vuoro checkout}"
VUORO_ROLE=${VUORO_ROLE:-kiosk}
case "${VUORO_ROLE}" in
    kiosk) units="vuoro-kiosk.service vuoro-sync.service" ;;
    display) units="vuoro-display.service" ;;
    *) echo "VUORO_ROLE must be kiosk or display, not '${VUORO_ROLE}'" >&2; exit 1 ;;
esac
rm -rf "${ROOTFS_DIR}/tmp/vuoro-src"
cp -a "${VUORO_SRC}" "${ROOTFS_DIR}/tmp/vuoro-src"
rm -rf "${ROOTFS_DIR}/tmp/vuoro-src/.venv" "${ROOTFS_DIR}/tmp/vuoro-src/var"

on_chroot <<CHROOT
set -e
make -C /tmp/vuoro-src install PREFIX=/opt/vuoro
systemd-sysusers /etc/sysusers.d/vuoro.conf
systemd-tmpfiles --create /etc/tmpfiles.d/vuoro.conf
if [ -n "${VUORO_SERVER:-}" ]; then
    sed -i "s|^VUORO_SERVER=.*|VUORO_SERVER=${VUORO_SERVER}|" /etc/vuoro/sync.env /etc/vuoro/display.env
fi
if [ -n "${VUORO_DISPLAY_CODE:-}" ]; then
    sed -i "s|^#\?VUORO_DISPLAY_CODE=.*|VUORO_DISPLAY_CODE=${VUORO_DISPLAY_CODE}|" /etc/vuoro/display.env
fi
if [ -n "${VUORO_ADMIN_PIN:-}" ]; then
    hash=\$(echo "${VUORO_ADMIN_PIN}" | /opt/vuoro/venv/bin/vuoro-kiosk --hash-pin)
    sed -i "s|^pin_hash = .*|\${hash}|" /etc/vuoro/kiosk.toml
fi
/opt/vuoro/venv/bin/vuoro-kiosk --check-config --config /etc/vuoro/kiosk.toml
/opt/vuoro/venv/bin/vuoro-display --check-config --config /etc/vuoro/display.env
systemctl enable ${units}
systemctl set-default multi-user.target
rm -rf /tmp/vuoro-src
CHROOT
