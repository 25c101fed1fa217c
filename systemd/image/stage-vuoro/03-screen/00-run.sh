#!/bin/bash -e
# The screen stays on, the console stays quiet, and the kiosk (or the display) owns tty1.
on_chroot <<CHROOT
raspi-config nonint do_blanking 1
systemctl mask getty@tty1.service
CHROOT
if ! grep -q consoleblank=0 "${ROOTFS_DIR}/boot/firmware/cmdline.txt"; then
    sed -i 's|$| consoleblank=0 quiet loglevel=3 vt.global_cursor_default=0|' \
        "${ROOTFS_DIR}/boot/firmware/cmdline.txt"
fi
