#!/usr/bin/env bash
# Fetches Apache Kafka's broker jars (and their runtime dependencies) once, with Maven, into a cache
# folder, so the integration tests can run a native single-node KRaft broker without Docker.
#   usage: integration-tests/kafka/fetch-broker.sh [DEST]     (default DEST: <repo>/.cache/kafka-libs)
# Idempotent: a complete DEST (marked by .complete-<version>) is left as it is. Needs java and mvn.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dest="${1:-${KAFKA_LIBS_DIR:-$root/.cache/kafka-libs}}"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
marker="$dest/.complete-$version"
if [ -f "$marker" ]; then
  echo "kafka broker jars $version already in $dest"
  exit 0
fi
command -v mvn >/dev/null || { echo "fetch-broker: mvn not found (apt-get install maven)" >&2; exit 1; }
command -v java >/dev/null || { echo "fetch-broker: java not found (Kafka $version needs Java 11+)" >&2; exit 1; }
# Download into a sibling folder and rename, so an interrupted fetch never leaves a half-filled cache.
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$(dirname "$dest")"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp"
touch "$tmp/.complete-$version"
rm -rf "$dest"
mv "$tmp" "$dest"
echo "kafka broker jars $version fetched into $dest ($(ls "$dest" | wc -l) jars)"
