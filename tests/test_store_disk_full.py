"""Issue 17.3 on a real small file system: the gateway's data dir on a 32 MiB tmpfs.

Messages are posted until the store refuses them (503 ``store_unavailable``): the free space
went under the watermark (6 MiB) and the WAL never took the volume (it is checkpointed and
truncated as space runs short). The daemon stays up and says why in /healthz. Then space is
freed (a filler file deleted): the store takes work again by itself, and every message
accepted before, during and after is delivered.

Needs ``mount -t tmpfs`` (root; CI runs as root): skipped when the mount is refused.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.app.daemon import Gateway
from tests.e2e_helpers import AUTH, Lab, eventually, gateway_config, simulator_config
from tests.store_helpers import status_counts

MIB = 1 << 20
VOLUME_MIB = 32
FILLER_MIB = 12
MIN_FREE_MIB = 6


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "vol"
    mount_point.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={VOLUME_MIB}m", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip("no mount command")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


class SmallDiskLab(Lab):
    async def start_gateway(self) -> None:
        assert self.simulator.smpp_port
        config = gateway_config(self.tmp_path / "data", self.simulator.smpp_port)
        store = replace(config.store, min_free_mb=MIN_FREE_MIB, health_check_interval=0.05)
        self.gateway = Gateway(replace(config, store=store))
        await self.gateway.start()
        await eventually(self._bound)


async def _post(lab: Lab, path: str, body: Any) -> tuple[int, Any]:
    assert lab.http is not None
    async with lab.http.post(lab.gw_url + path, json=body, headers=AUTH) as r:
        return r.status, await r.json()


async def _health(lab: Lab) -> tuple[int, Any]:
    assert lab.http is not None
    async with lab.http.get(lab.gw_url + "/healthz") as r:
        return r.status, await r.json()


async def test_a_full_disk_refuses_new_work_keeps_the_daemon_up_and_recovers(
    volume: Path,
) -> None:
    filler = volume / "filler"
    filler.write_bytes(b"\0" * (FILLER_MIB * MIB))
    lab = SmallDiskLab(volume, simulator_config())
    await lab.start()
    try:
        assert lab.gateway is not None
        db = lab.gateway.config.store_path
        accepted: list[str] = []
        refused: dict[str, Any] | None = None
        largest_wal = 0
        for batch in range(400):
            items = [
                {"to": f"+3361{batch:03d}{i:04d}", "from": "ACME", "text": f"{i} " + "x" * 150}
                for i in range(200)
            ]
            status, body = await _post(lab, "/v1/messages/batch", {"messages": items})
            wal = db.with_name(db.name + "-wal")
            largest_wal = max(largest_wal, wal.stat().st_size if wal.exists() else 0)
            if status == 202:
                accepted.extend(m["id"] for m in body["messages"])
                continue
            assert status == 503, body
            refused = body
            break
        assert refused is not None, "the volume never filled"
        assert refused["error"]["code"] == "store_unavailable"
        assert accepted
        # Still up, and it says why.
        status, health = await _health(lab)
        assert status == 503 and health["status"] == "degraded", health
        assert health["store"]["reason"] in ("disk_low", "disk_full"), health
        # The WAL never took the volume.
        assert largest_wal < (VOLUME_MIB - FILLER_MIB) * MIB, largest_wal

        filler.unlink()  # space comes back

        async def healthy() -> bool:
            return (await _health(lab))[0] == 200

        await eventually(healthy, within=30)
        status, body = await _post(
            lab,
            "/v1/messages/batch",
            {"messages": [{"to": "+33699999999", "from": "ACME", "text": "after"}]},
        )
        assert status == 202, body
        accepted.extend(m["id"] for m in body["messages"])

        store = lab.gateway.store

        async def all_delivered() -> bool:
            counts = await status_counts(store)
            return counts.get("delivered", 0) == len(accepted)

        await eventually(all_delivered, within=120)
        assert os.statvfs(volume).f_bavail > 0
    finally:
        await lab.stop()
