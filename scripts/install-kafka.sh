#!/usr/bin/env bash
# Fetches the Apache Kafka broker the tests start (tests/servers/kafka.py) from Maven Central:
# kafka_2.13 and every runtime jar a KRaft broker needs, as scripts/kafka/pom.xml names them,
# into .cache/kafka/<version>/lib/ of the repository (git-ignored). Does nothing when that folder
# is there already. Needs Java 17 or newer and Maven (scripts/install-test-servers.sh installs
# both from Debian when missing); Maven keeps its downloads in ~/.m2 as usual.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
pom="$root/scripts/kafka/pom.xml"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
lib="$root/.cache/kafka/$version/lib"

if [ -f "$lib/kafka_2.13-$version.jar" ]; then
    exit 0
fi
for tool in java mvn; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-kafka: $tool is missing: scripts/install-test-servers.sh installs it" >&2
        exit 1
    fi
done
java_version="$(java -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')"
if [ "${java_version:-0}" -lt 17 ]; then
    echo "install-kafka: Kafka $version needs Java 17 or newer; java here is ${java_version:-?}" >&2
    exit 1
fi

# Copied into a fresh folder, moved in place only when complete: an interrupted fetch is redone.
partial="$lib.partial"
rm -rf "$partial"
trap 'rm -rf "$partial"' EXIT
echo "fetching Apache Kafka $version (broker jars) from Maven Central into ${lib#"$root"/}"
started=$(date +%s)
log="$root/.cache/kafka/$version/mvn.log"
mkdir -p "$(dirname "$log")"
if ! mvn --batch-mode --no-transfer-progress -f "$pom" \
    dependency:copy-dependencies -DoutputDirectory="$partial" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "install-kafka: Maven could not fetch Kafka $version (whole log: $log)" >&2
    exit 1
fi
rm -rf "$lib"
mv "$partial" "$lib"
jars=$(find "$lib" -name '*.jar' | wc -l)
size=$(du -sm "$lib" | cut -f1)
echo "Apache Kafka $version: $jars jars, $size MB, in $(($(date +%s) - started)) s"
