#!/usr/bin/env bash
# Installs the Debian packages of the servers the test suite starts, when they are missing.
set -euo pipefail

packages=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || packages+=(mosquitto)

if [ ${#packages[@]} -eq 0 ]; then
    exit 0
fi
echo "installing test servers from Debian: ${packages[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# The Debian package enables a system-wide broker on port 1883; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
    $SUDO systemctl stop mosquitto || true
fi
