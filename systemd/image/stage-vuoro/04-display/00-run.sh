#!/bin/bash -e
# The display role (VUORO_ROLE=display): Chromium under the cage Wayland
# compositor, and the speech out through the TV's HDMI. A kiosk needs neither.
#   VUORO_AUDIO_CARD  the ALSA card of the HDMI port the TV is on (default
#                     vc4hdmi0: HDMI 0 of a Pi 4 or 5; a Pi 3's is vc4hdmi)
if [ "${VUORO_ROLE:-kiosk}" != display ]; then
    exit 0
fi
card=${VUORO_AUDIO_CARD:-vc4hdmi0}
on_chroot <<CHROOT
set -e
# Raspberry Pi OS names its Chromium chromium-browser on some releases; cage
# 0.1.4 refuses to start without the Xwayland binary (not a dependency of it)
candidate=\$(apt-cache policy chromium | sed -n 's/^ *Candidate: //p')
if [ -n "\${candidate}" ] && [ "\${candidate}" != "(none)" ]; then
    browser=chromium
else
    browser=chromium-browser
fi
apt-get install -y --no-install-recommends cage xwayland "\${browser}" libgl1-mesa-dri \
    fonts-dejavu-core alsa-utils
CHROOT
# ALSA's default device: the TV. "hdmi:" gives vc4-hdmi the IEC958 frames it
# takes; "plug" converts the browser's rate and format.
cat > "${ROOTFS_DIR}/etc/asound.conf" <<ASOUND
# Vuoro display: the calls are spoken through the TV on HDMI
pcm.!default { type plug; slave.pcm "hdmi:CARD=${card},DEV=0" }
ctl.!default { type hw; card ${card} }
ASOUND
