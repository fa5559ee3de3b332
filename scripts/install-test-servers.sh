#!/usr/bin/env bash
# Installs the servers the test suite starts, when they are missing: Debian packages (mosquitto,
# InfluxDB 1.x, VictoriaMetrics, PostgreSQL, and the Java runtime and Maven that Kafka needs),
# then Apache Kafka's jars from Maven Central (scripts/install-kafka.sh).
# The tests start their own instances on free ports in temporary folders; system-wide services
# the packages enable are stopped.
set -euo pipefail

packages=()
# need PACKAGE EXECUTABLE: install PACKAGE unless EXECUTABLE exists.
need() {
    [ -x "$2" ] || command -v "$(basename "$2")" >/dev/null 2>&1 || packages+=("$1")
}
need mosquitto /usr/sbin/mosquitto
need influxdb /usr/bin/influxd
need victoria-metrics /usr/bin/victoria-metrics
need postgresql "$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)"
need default-jre-headless /usr/bin/java
need maven /usr/bin/mvn

if [ ${#packages[@]} -gt 0 ]; then
    echo "installing test servers from Debian: ${packages[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    # The packages may enable system-wide services on the default ports; the tests start their own.
    if command -v systemctl >/dev/null 2>&1; then
        for service in mosquitto postgresql influxdb victoria-metrics; do
            if systemctl is-active --quiet "$service" 2>/dev/null; then
                $SUDO systemctl stop "$service" || true
            fi
        done
    fi
fi

"$(dirname "$0")/install-kafka.sh"
