#!/usr/bin/env bash
# Install smsgw as a systemd service (run as root from a checkout):
#   - a system user `smsgw`,
#   - the code in /opt/smsgw with its own virtualenv,
#   - /etc/smsgw/gateway.toml (kept if already there): a production configuration made from
#     conf/gateway.toml by scripts/production-config.py: node.data_dir at the StateDirectory
#     /var/lib/smsgw, a fresh random HTTP token (printed once, below), no front account, the
#     simulator carrier commented out, development off (the daemon then refuses any credential
#     published in this repository),
#   - /etc/smsgw/simulator.toml from conf/ (kept if already there), for labs,
#   - the units from systemd/, then `systemctl daemon-reload`.
# Then: add your carriers to /etc/smsgw/gateway.toml, and systemctl enable --now smsgw.
set -euo pipefail
[[ $EUID -eq 0 ]] || { echo "run as root" >&2; exit 1; }
src=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/smsgw
python=${PYTHON:-python3}

id smsgw >/dev/null 2>&1 || useradd --system --home-dir /var/lib/smsgw --shell /usr/sbin/nologin smsgw
install -d -m 0755 "$prefix"
cp -a "$src/gateway" "$src/smsc_simulator" "$src/pyproject.toml" "$src/README.md" "$prefix/"
"$python" -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install --quiet "$prefix"
install -d -m 0750 -o root -g smsgw /etc/smsgw
if [[ ! -e /etc/smsgw/gateway.toml ]]; then
    # Written 0640 and never overwritten; the token's clear text goes to this terminal only.
    "$prefix/venv/bin/python" "$src/scripts/production-config.py" \
        "$src/conf/gateway.toml" /etc/smsgw/gateway.toml --data-dir /var/lib/smsgw
    chgrp smsgw /etc/smsgw/gateway.toml
else
    echo "/etc/smsgw/gateway.toml exists: kept as it is"
fi
if [[ ! -e /etc/smsgw/simulator.toml ]]; then
    install -m 0640 -g smsgw "$src/conf/simulator.toml" /etc/smsgw/simulator.toml
fi
install -m 0644 "$src/systemd/smsgw.service" "$src/systemd/smsc-sim.service" /etc/systemd/system/
systemctl daemon-reload
if "$prefix/venv/bin/smsgw" check-config --config /etc/smsgw/gateway.toml; then
    echo "installed; start with: systemctl enable --now smsgw"
else
    echo "installed; /etc/smsgw/gateway.toml is not ready (above): add your carriers" \
        "([[carriers]]), check it with" \
        "'$prefix/venv/bin/smsgw check-config --config /etc/smsgw/gateway.toml'," \
        "then: systemctl enable --now smsgw"
fi
