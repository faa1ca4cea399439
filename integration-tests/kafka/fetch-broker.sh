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
mkdir -p "$(dirname "$dest")"
# One fetch at a time per DEST: test files run in parallel and each may find the jars missing (with
# KAFKA_BROKERS set nothing fetched them first), and two runs may share a cache (KAFKA_LIBS_DIR). Without
# the lock one fetch's `rm -rf DEST` removed jars another had just put there, or moved its folder inside.
# The lock is released when this script ends, however it ends.
if command -v flock >/dev/null; then
  exec 9>"$dest.lock"
  flock 9
  if [ -f "$marker" ]; then
    echo "kafka broker jars $version already in $dest (fetched by another run)"
    exit 0
  fi
fi
# Download into a sibling folder and rename, so an interrupted fetch never leaves a half-filled cache.
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mvn_pid=
# Stopped (a timeout's SIGTERM, Ctrl-C): stop Maven too, or it would go on filling the folder just removed.
cleanup() {
  if [ -n "$mvn_pid" ]; then kill "$mvn_pid" 2>/dev/null || true; wait "$mvn_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
# In the background so that a signal runs its trap at once (bash defers traps while a foreground child runs);
# without the lock's descriptor, so a Maven outliving this script cannot hold the lock.
mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" 9>&- &
mvn_pid=$!
wait "$mvn_pid"
mvn_pid=
touch "$tmp/.complete-$version"
rm -rf "$dest"
mv "$tmp" "$dest"
echo "kafka broker jars $version fetched into $dest ($(ls "$dest" | wc -l) jars)"
