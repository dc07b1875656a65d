#!/usr/bin/env bash
# The main job on the embedded default: a chunk server on 127.0.0.1 with its embedded
# object store, one user, and a synced folder kept in step by the daemon.
# Everything lives under ./demo (or $CHUNKSYNC_DEMO). Ctrl-C stops the daemon and server.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
bin=$PWD/.venv/bin
demo=${CHUNKSYNC_DEMO:-$PWD/demo}
port=${CHUNKSYNC_PORT:-8400}
mkdir -p "$demo" && chmod 700 "$demo"
export CHUNKSYNC_HOME=$demo/home CHUNKSYNC_SERVER_DATA=$demo/server

secret() {  # a random secret kept in a 0600 file, created once
  [ -s "$1" ] || (umask 077 && "$bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$1")
}
secret "$demo/password"
secret "$demo/passphrase"

"$bin/chunksync-server" serve --host 127.0.0.1 --port "$port" --port-file "$demo/server.port" \
  >"$demo/server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null' EXIT
for _ in $(seq 100); do
  [ -s "$demo/server.port" ] && "$bin/python" - "$port" <<'PY' && break
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=1)
PY
  sleep 0.1
done
url=http://127.0.0.1:$port

if ! "$bin/chunksync-server" user list | grep -qw me; then
  "$bin/chunksync-server" user add me --password-file "$demo/password"
fi
"$bin/chunksync" login "$url" --user me --password-file "$demo/password" --device-name "$(hostname)"
if [ ! -d "$demo/Sync/.chunksync" ]; then
  mkdir -p "$demo/Sync"
  [ -e "$demo/Sync/README.txt" ] || echo "Files you put here are encrypted and synced." >"$demo/Sync/README.txt"
  "$bin/chunksync" init "$demo/Sync" --folder sync --passphrase-file "$demo/passphrase"
else
  "$bin/chunksync" sync "$demo/Sync"
fi
"$bin/chunksync" log "$demo/Sync"

cat <<TEXT

Synced folder: $demo/Sync (server $url, data in $demo/server).
Add a second device:  CHUNKSYNC_HOME=/tmp/dev2 $bin/chunksync login $url --user me --password-file $demo/password --device-name dev2
                      CHUNKSYNC_HOME=/tmp/dev2 $bin/chunksync join /tmp/dev2-Sync --folder sync --passphrase-file $demo/passphrase
The daemon now watches $demo/Sync; Ctrl-C stops it and the server.
TEXT
if [ -n "${CHUNKSYNC_QUICKSTART_NO_DAEMON:-}" ]; then exit 0; fi
"$bin/chunksync" daemon "$demo/Sync"
