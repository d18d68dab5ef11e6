#!/usr/bin/env bash
# Debian packages installed when missing (as root, via apt). `demo` needs the first group, `test`
# (the default) all of them:
#   espeak-ng                      offline text to speech (IVR prompts, spoken alerts)
#   ffmpeg                         decodes gTTS's MP3 for pydub
#   nodejs, npm                    run the independent SMSC simulator (tests/smsc, npm `smpp`)
# and for the tests only:
#   debootstrap, debian-archive-keyring
#                                  to build the Debian sid chroot that runs the real Asterisk 22
#   chromium                       the browser the console's Playwright tests drive (no browser download)
#   sip-tester                     SIPp: the operator's trunk and the phones of the SIP tests (tests/sip)
set -euo pipefail
purpose="${1:-test}"
case "$purpose" in demo|test) ;; *) echo "usage: $0 [demo|test]" >&2; exit 2 ;; esac

need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "$purpose" = test ]; then
    command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
    [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
    [ -x /usr/bin/chromium ] || need+=(chromium)
    command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
fi

if [ ${#need[@]} -eq 0 ]; then
    echo "system packages ($purpose): all present"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing Debian packages: ${need[*]} (install them as root: apt-get install ${need[*]})" >&2
    exit 1
fi
echo "system packages ($purpose): installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "system packages: installed ${need[*]}"
