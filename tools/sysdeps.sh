#!/bin/sh
# Install the Debian / Raspberry Pi OS packages a target needs, only if missing.
#   tools/sysdeps.sh run    the kiosk window
#   tools/sysdeps.sh test   the test suite (virtual screen, input injection, OCR,
#                           PostgreSQL's server and psql for a throwaway cluster,
#                           espeak-ng for the spoken calls, alsa-utils' aplay
#                           for the kiosk's voice played to ALSA's null device)
#   tools/sysdeps.sh venv   python3's venv module
#   tools/sysdeps.sh server a queue server (espeak-ng speaks the display's calls)
# As root it installs with apt-get; otherwise through sudo if that works
# without a password prompt; otherwise it prints the exact command and fails.
set -eu

case "${1:-}" in
  venv) pkgs="python3-venv" ;;
  run)  pkgs="libmtdev1 libgl1 libegl1 libgl1-mesa-dri" ;;
  test) pkgs="libmtdev1 libgl1 libegl1 libgl1-mesa-dri xvfb xauth xdotool tesseract-ocr chromium wrk faketime postgresql espeak-ng alsa-utils" ;;
  server) pkgs="espeak-ng" ;;
  *) echo "usage: $0 run|test|server|venv" >&2; exit 2 ;;
esac

# the display appliance's tests run the real compositor (cage needs Xwayland)
if [ "${1:-}" = test ]; then pkgs="$pkgs cage xwayland"; fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "sysdeps: not a Debian system; make sure these are installed: $pkgs" >&2
  exit 0
fi

missing=""
for p in $pkgs; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case "$status" in ii*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0

line="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo"
else
  echo "sysdeps: missing system packages:$missing" >&2
  echo "sysdeps: install them with:  sudo apt-get update && sudo $line" >&2
  exit 1
fi
echo "sysdeps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null || true
$sudo $line >/dev/null
