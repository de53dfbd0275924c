#!/usr/bin/env bash
# Install smsgw as a systemd service (run as root from a checkout):
#   - a system user `smsgw`,
#   - the code in /opt/smsgw with its own virtualenv,
#   - /etc/smsgw/gateway.toml and simulator.toml from conf/ (kept if already there),
#     with node.data_dir pointed at the StateDirectory /var/lib/smsgw,
#   - the units from systemd/, then `systemctl daemon-reload`.
# Then: systemctl enable --now smsgw   (and smsc-sim in a lab).
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
    sed 's#^data_dir = .*#data_dir = "/var/lib/smsgw"#' "$src/conf/gateway.toml" > /etc/smsgw/gateway.toml
    chmod 0640 /etc/smsgw/gateway.toml && chgrp smsgw /etc/smsgw/gateway.toml
fi
if [[ ! -e /etc/smsgw/simulator.toml ]]; then
    install -m 0640 -g smsgw "$src/conf/simulator.toml" /etc/smsgw/simulator.toml
fi
"$prefix/venv/bin/smsgw" check-config --config /etc/smsgw/gateway.toml
install -m 0644 "$src/systemd/smsgw.service" "$src/systemd/smsc-sim.service" /etc/systemd/system/
systemctl daemon-reload
echo "installed; start with: systemctl enable --now smsgw"
