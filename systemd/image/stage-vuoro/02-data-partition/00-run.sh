#!/bin/bash -e
# The state DB lives on its own partition, so the root can be read-only
# (VUORO_READONLY_ROOT=1) and a power cut never touches the system files.
# Raspberry Pi OS grows the root to fill the card on first boot; instead, the
# first boot here makes a data partition from the space after the root.
install -m 0755 files/vuoro-data-partition "${ROOTFS_DIR}/usr/local/sbin/vuoro-data-partition"
install -m 0644 files/vuoro-data-partition.service \
    "${ROOTFS_DIR}/etc/systemd/system/vuoro-data-partition.service"
echo "LABEL=vuoro-data /var/lib/vuoro ext4 defaults,noatime,commit=5,nofail,x-systemd.device-timeout=15s 0 2" \
    >> "${ROOTFS_DIR}/etc/fstab"
on_chroot <<CHROOT
systemctl enable vuoro-data-partition.service
# no automatic root resize: the free space becomes the data partition
sed -i 's| init=/usr/lib/raspberrypi-sys-mods/firstboot||' /boot/firmware/cmdline.txt || true
if [ "${VUORO_READONLY_ROOT:-0}" = 1 ]; then
    raspi-config nonint do_overlayfs 0
fi
CHROOT
