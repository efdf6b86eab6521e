#!/usr/bin/env bash
# Stops an anvil started with --detach.   anvil/stop.sh [--port 8545]
set -euo pipefail
port=8545
[ "${1:-}" = "--port" ] && port="$2"
pid_file="$(dirname "$0")/run/anvil-$port.pid"
[ -f "$pid_file" ] || { echo "anvil/stop.sh: no anvil recorded on port $port" >&2; exit 1; }
kill "$(cat "$pid_file")" 2>/dev/null || true
rm -f "$pid_file"
