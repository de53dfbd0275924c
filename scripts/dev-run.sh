#!/usr/bin/env bash
# `make run`: the bundled SMSC simulator and the gateway bound to it, on loopback.
# Ctrl-C stops both.
#
# The ports and the data directory can be moved through the environment (defaults shown):
#   SMSGW_HTTP_PORT=8775 SMSGW_FRONT_PORT=2776 SMSC_SIM_PORT=2775 SMSC_SIM_CONTROL_PORT=8776
#   SMSGW_VAR_DIR=var
# With any of them set, the configurations are copies of conf/ with those values, written to
# $SMSGW_VAR_DIR/dev-run/; without, conf/gateway.toml and conf/simulator.toml are used as they are.
#
# Stopping is certain: the two programs run in sessions of their own (a Ctrl-C reaches only
# this script, which stops each with one SIGTERM, a graceful drain), and each gets SIGTERM
# from the kernel when this script dies, however it dies (scripts/tied-to-parent.py): a
# supervisor's SIGTERM then SIGKILL, or a closing terminal, leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

HTTP_PORT=${SMSGW_HTTP_PORT:-8775}
FRONT_PORT=${SMSGW_FRONT_PORT:-2776}
SIM_PORT=${SMSC_SIM_PORT:-2775}
SIM_CONTROL_PORT=${SMSC_SIM_CONTROL_PORT:-8776}
VAR=${SMSGW_VAR_DIR:-var}
mkdir -p "$VAR"

gateway_conf=conf/gateway.toml
simulator_conf=conf/simulator.toml
overrides="${SMSGW_HTTP_PORT:-}${SMSGW_FRONT_PORT:-}${SMSC_SIM_PORT:-}"
overrides+="${SMSC_SIM_CONTROL_PORT:-}${SMSGW_VAR_DIR:-}"
if [[ -n "$overrides" ]]; then
    var_abs=$(cd "$VAR" && pwd)
    mkdir -p "$var_abs/dev-run"
    gateway_conf=$var_abs/dev-run/gateway.toml
    simulator_conf=$var_abs/dev-run/simulator.toml
    # `port =` and `data_dir =` lines, replaced in the tables they belong to.
    awk -v http="$HTTP_PORT" -v front="$FRONT_PORT" -v smsc="$SIM_PORT" -v data="$var_abs" '
        /^\[/ { table = $1 }
        table == "[node]" && /^data_dir *=/ { print "data_dir = \"" data "\""; next }
        table == "[http]" && /^port *=/ { print "port = " http; next }
        table == "[front]" && /^port *=/ { print "port = " front; next }
        table == "[[carriers]]" && /^port *=/ { print "port = " smsc; next }
        { print }' conf/gateway.toml > "$gateway_conf"
    awk -v smpp="$SIM_PORT" -v control="$SIM_CONTROL_PORT" '
        /^\[/ { table = $1 }
        table == "[smpp]" && /^port *=/ { print "port = " smpp; next }
        table == "[control]" && /^port *=/ { print "port = " control; next }
        { print }' conf/simulator.toml > "$simulator_conf"
fi

pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in ${pids[@]+"${pids[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "stopped."
}
# A signal stops both and ends the script: nothing after it runs (in particular, nothing
# is started once the stop has begun).
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

"$BIN/python" scripts/tied-to-parent.py $$ "$BIN/smsc-sim" --config "$simulator_conf" &
pids+=($!)
"$BIN/python" scripts/tied-to-parent.py $$ "$BIN/smsgw" run --config "$gateway_conf" &
pids+=($!)

# /healthz says "ok" once every bind is up (Python rather than curl: one dependency less).
healthy() {
    "$BIN/python" -c '
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
        sys.exit(0 if json.load(r).get("status") == "ok" else 1)
except (OSError, ValueError):
    sys.exit(1)' "http://127.0.0.1:$HTTP_PORT/healthz"
}

ready=
for _ in $(seq 1 300); do
    if healthy; then
        ready=1
        break
    fi
    for pid in "${pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "make run: the simulator or the gateway stopped (its messages are above)" >&2
            exit 1
        fi
    done
    sleep 0.1
done
[[ -n "$ready" ]] || echo "make run: not every bind is up yet; see /healthz" >&2
cat <<MSG

smsgw is running (HTTP on 127.0.0.1:$HTTP_PORT, SMPP front for upstream ESMEs on
127.0.0.1:$FRONT_PORT, account crm / crmpass), bound to the simulator (SMPP
127.0.0.1:$SIM_PORT, control API 127.0.0.1:$SIM_CONTROL_PORT).
Development token: dev-token-change-me
Web console: http://127.0.0.1:$HTTP_PORT/console/ (sign in with the token above)

Send a first message, then read its status (delivered within a second or so):

  curl -s -X POST http://127.0.0.1:$HTTP_PORT/v1/messages \\
       -H 'Authorization: Bearer dev-token-change-me' -H 'Content-Type: application/json' \\
       -d '{"to": "+33612345678", "from": "ACME", "text": "Hello from smsgw"}'
  curl -s http://127.0.0.1:$HTTP_PORT/v1/messages/<id> -H 'Authorization: Bearer dev-token-change-me'

  curl -s http://127.0.0.1:$HTTP_PORT/healthz          # binds
  curl -s http://127.0.0.1:$SIM_CONTROL_PORT/v1/stats         # what the simulator saw

Ctrl-C stops both.
MSG
wait -n "${pids[@]}" || true
