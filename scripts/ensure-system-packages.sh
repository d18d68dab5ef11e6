#!/usr/bin/env bash
# Debian packages the tests need on the host, installed when missing (as root, via apt):
#   espeak-ng                      offline text to speech (IVR prompts, spoken alerts)
#   ffmpeg                         decodes gTTS's MP3 for pydub
#   debootstrap, debian-archive-keyring
#                                  to build the Debian sid chroot that runs the real Asterisk 22
#   nodejs, npm                    run the independent SMSC simulator (tests/smsc, npm `smpp`)
set -euo pipefail

need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)

if [ ${#need[@]} -eq 0 ]; then
    echo "system packages: all present"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing Debian packages: ${need[*]} (install them as root: apt-get install ${need[*]})" >&2
    exit 1
fi
echo "system packages: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "system packages: installed ${need[*]}"
