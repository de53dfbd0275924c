#!/usr/bin/env bash
# `make run`: the bundled SMSC simulator and the gateway bound to it, on loopback.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
mkdir -p var

pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "stopped."
}
trap cleanup INT TERM EXIT

# Each in its own session: Ctrl-C reaches only this script, which stops them with one
# SIGTERM each (a graceful drain); a second signal would force their exit.
setsid "$BIN/smsc-sim" --config conf/simulator.toml &
pids+=($!)
setsid "$BIN/smsgw" run --config conf/gateway.toml &
pids+=($!)

for _ in $(seq 1 100); do
    if health=$(curl -fsS http://127.0.0.1:8775/healthz 2>/dev/null) \
        && [[ "$health" == *'"status": "ok"'* ]]; then
        break
    fi
    sleep 0.1
done
cat <<MSG

smsgw is running (HTTP on 127.0.0.1:8775), bound to the simulator (SMPP 127.0.0.1:2775,
control API 127.0.0.1:8776). Development token: dev-token-change-me

Send a first message, then read its status (delivered within a second or so):

  curl -s -X POST http://127.0.0.1:8775/v1/messages \\
       -H 'Authorization: Bearer dev-token-change-me' -H 'Content-Type: application/json' \\
       -d '{"to": "+33612345678", "from": "ACME", "text": "Hello from smsgw"}'
  curl -s http://127.0.0.1:8775/v1/messages/<id> -H 'Authorization: Bearer dev-token-change-me'

  curl -s http://127.0.0.1:8775/healthz          # binds
  curl -s http://127.0.0.1:8776/v1/stats         # what the simulator saw

Ctrl-C stops both.
MSG
wait -n "${pids[@]}" || true
