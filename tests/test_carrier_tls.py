"""Carrier binds over TLS, end to end against the simulator's TLS listener: the certificate
verified against a CA bundle and a server name, a client certificate when the SMSC asks for
one, and every failure (wrong CA, wrong name, no client certificate) a bind that stays
unbound with a ``bind.tls_failed`` line, a counter and a ``last_error`` that says why."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.app.daemon import Gateway
from gateway.config import ConfigError, load_config
from gateway.smpp.aio import SmppConnection
from gateway.smpp.constants import Status
from gateway.smpp.session import Role, Session, SessionConfig
from smsc_simulator.config import SimulatorConfig, TlsListenerConfig
from smsc_simulator.server import Simulator
from tests.e2e_helpers import Lab, eventually, gateway_config, simulator_config
from tests.smpp_client import EsmeClient
from tests.tls_certs import SERVER_NAME, Pki, RefusingTlsServer, make_pki, needs_openssl

pytestmark = needs_openssl

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_simulator(pki: Pki, client_ca: Path | None = None) -> SimulatorConfig:
    config = simulator_config()
    listener = TlsListenerConfig(
        cert=str(pki.server_cert),
        key=str(pki.server_key),
        port=0,
        client_ca=str(client_ca or ""),
    )
    return replace(config, smpp=replace(config.smpp, tls=listener))


def tls_failures(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        getattr(r, "smsgw_fields", {})
        for r in caplog.records
        if r.getMessage() == "bind.tls_failed" and r.levelno == logging.WARNING
    ]


async def unbound_gateway(tmp_path: Path, sim: Simulator, **carrier: Any) -> Gateway:
    """A gateway whose TLS binds are expected to fail: started, and settled (backing off)."""
    assert sim.smpp_tls_port
    config = gateway_config(tmp_path / "data", sim.smpp_tls_port, tls=True, **carrier)
    gateway = Gateway(config)
    await gateway.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(b.settled.wait() for b in gateway.binds)), 20)
    except BaseException:
        await gateway.stop()
        raise
    return gateway


async def test_a_message_goes_over_tls_and_its_receipt_comes_back(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smsgw.bind")
    lab = Lab(tmp_path, tls_simulator(pki), tls=True, tls_ca_file=str(pki.ca))
    await lab.start()
    try:
        assert lab.gateway is not None
        for bind in lab.gateway.binds:
            assert bind.conn is not None and bind.conn.transport is not None
            assert bind.conn.transport.get_extra_info("ssl_object") is not None
        answer = await lab.post(
            "/v1/messages", {"to": "+33611111111", "from": "ACME", "text": "hi"}
        )

        async def delivered() -> bool:
            return await lab.statuses([answer["id"]]) == {"delivered": 1}

        await eventually(delivered)
        stats = await lab.sim("GET", "/v1/stats")
        assert stats["submit_sm"] == 1 and stats["receipts_sent"] == 1
        bound = [
            getattr(r, "smsgw_fields", {})
            for r in caplog.records
            if r.getMessage() == "bind.state"
            and getattr(r, "smsgw_fields", {}).get("state") == "bound"
        ]
        assert bound and all(f["tls"].startswith("TLSv1.") for f in bound)
    finally:
        await lab.stop()


async def test_a_certificate_from_another_ca_fails_the_bind_with_a_clear_log_line(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smsgw.bind")
    sim = Simulator(tls_simulator(pki))
    await sim.start()
    try:
        gateway = await unbound_gateway(tmp_path, sim, tls_ca_file=str(pki.other_ca), binds=1)
        try:
            (bind,) = gateway.binds
            assert not bind.bound
            assert bind.last_error.startswith("tls: certificate verify failed:"), bind.last_error
            assert bind.metrics.tls_failures >= 1
            (line, *_) = tls_failures(caplog)
            assert line["carrier"] == "sim" and line["bind"] == "sim-1"
            assert line["server_name"] == "127.0.0.1"
            assert "certificate verify failed" in line["reason"]
            assert "issuer" in line["reason"]  # "unable to get local issuer certificate"
            assert sim.stats.bind_attempts == 0  # refused before any PDU
            metrics = await _metrics(gateway)
            assert re.search(
                r'smsgw_bind_tls_failures_total\{bind="sim-1",carrier="sim"\} [1-9]', metrics
            )
        finally:
            await gateway.stop()
    finally:
        await sim.stop()


@pytest.mark.parametrize(
    ("server_name", "binds"),
    [("wrong.example", False), (SERVER_NAME, True), ("", True)],
    ids=["wrong-name", "dns-name", "default-is-the-host-ip"],
)
async def test_the_server_name_is_checked(
    tmp_path: Path, pki: Pki, server_name: str, binds: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smsgw.bind")
    sim = Simulator(tls_simulator(pki))
    await sim.start()
    try:
        gateway = await unbound_gateway(
            tmp_path, sim, tls_ca_file=str(pki.ca), tls_server_name=server_name, binds=1
        )
        try:
            (bind,) = gateway.binds
            assert bind.bound is binds, bind.last_error
            if not binds:
                assert "mismatch" in bind.last_error
                assert tls_failures(caplog)[0]["server_name"] == server_name
        finally:
            await gateway.stop()
    finally:
        await sim.stop()


async def test_verify_off_binds_to_any_certificate_and_says_so(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smsgw.bind")
    sim = Simulator(tls_simulator(pki))
    await sim.start()
    try:
        # The CA bundle trusts nothing the simulator shows, and the name is wrong.
        gateway = await unbound_gateway(
            tmp_path,
            sim,
            tls_ca_file=str(pki.other_ca),
            tls_server_name="wrong.example",
            tls_verify=False,
            binds=1,
        )
        try:
            assert gateway.binds[0].bound
            warnings = [
                r
                for r in caplog.records
                if r.getMessage() == "bind.tls_unverified" and r.levelno == logging.WARNING
            ]
            assert len(warnings) == 1
        finally:
            await gateway.stop()
    finally:
        await sim.stop()


async def test_a_client_certificate_when_the_smsc_asks_for_one(tmp_path: Path, pki: Pki) -> None:
    sim = Simulator(tls_simulator(pki, client_ca=pki.ca))
    await sim.start()
    try:
        with_cert = await unbound_gateway(
            tmp_path / "with",
            sim,
            tls_ca_file=str(pki.ca),
            tls_cert=str(pki.client_cert),
            tls_key=str(pki.client_key),
            binds=1,
        )
        try:
            assert with_cert.binds[0].bound, with_cert.binds[0].last_error
        finally:
            await with_cert.stop()
        without = await unbound_gateway(tmp_path / "without", sim, tls_ca_file=str(pki.ca), binds=1)
        try:
            assert not without.binds[0].bound
        finally:
            await without.stop()
    finally:
        await sim.stop()


async def test_a_refused_client_certificate_fails_the_bind_with_a_clear_log_line(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    # TLS 1.3 refuses a client certificate after the client's handshake is over: the bind
    # is sent, and the SMSC's alert comes back instead of bind_resp.
    caplog.set_level(logging.INFO, logger="smsgw.bind")
    with RefusingTlsServer(pki) as smsc:
        config = gateway_config(
            tmp_path / "data", smsc.port, tls=True, tls_ca_file=str(pki.ca), binds=1
        )
        gateway = Gateway(config)
        await gateway.start()
        try:
            (bind,) = gateway.binds
            await asyncio.wait_for(bind.settled.wait(), 20)
            assert not bind.bound
            assert bind.last_error == "tls: tlsv13 alert certificate required", bind.last_error
            assert bind.metrics.tls_failures >= 1
            (line, *_) = tls_failures(caplog)
            assert line["reason"] == "tlsv13 alert certificate required"
        finally:
            await gateway.stop()
    assert smsc.refused >= 1


@pytest.mark.parametrize("minimum", ["1.2", "1.3"])
async def test_min_version_is_what_the_bind_offers(tmp_path: Path, pki: Pki, minimum: str) -> None:
    config = tls_simulator(pki)
    sim = Simulator(config)
    await sim.start()
    try:
        gateway = await unbound_gateway(
            tmp_path, sim, tls_ca_file=str(pki.ca), tls_min_version=minimum, binds=1
        )
        try:
            (bind,) = gateway.binds
            assert bind.bound
            assert bind.conn is not None and bind.conn.transport is not None
            version = bind.conn.transport.get_extra_info("ssl_object").version()
            assert version in (("TLSv1.2", "TLSv1.3") if minimum == "1.2" else ("TLSv1.3",))
        finally:
            await gateway.stop()
    finally:
        await sim.stop()


async def test_the_simulator_keeps_its_plain_listener_and_refuses_plain_on_tls(
    pki: Pki,
) -> None:
    sim = Simulator(tls_simulator(pki))
    await sim.start()
    try:
        assert sim.smpp_port and sim.smpp_tls_port and sim.smpp_port != sim.smpp_tls_port
        plain = await EsmeClient.bound(sim.smpp_port)
        await plain.unbind()
        # Over TLS with a client of our own, trusting the CA.
        client = EsmeClient(SessionConfig(response_timeout=5.0, bind_timeout=5.0))
        loop = asyncio.get_running_loop()
        await loop.create_connection(
            lambda: SmppConnection(Session(Role.ESME, client.config, loop.time()), client),
            "127.0.0.1",
            sim.smpp_tls_port,
            ssl=ssl.create_default_context(cafile=str(pki.ca)),
        )
        assert await client.bind("trx", "smsgw", "secret") == Status.ROK
        await client.unbind()
        # Plain text on the TLS port gets no bind.
        stray = await EsmeClient.connect("127.0.0.1", sim.smpp_tls_port, response_timeout=1.0)
        with pytest.raises((ConnectionError, TimeoutError)):
            await stray.bind("trx", "smsgw", "secret", within=2.0)
        await stray.close()
        assert sim.stats.bind_attempts == 2  # the two TLS-less and TLS binds above; up still
        again = await EsmeClient.bound(sim.smpp_port)
        await again.unbind()
    finally:
        await sim.stop()


# -- configuration ------------------------------------------------------------------------

CARRIER = """
[node]
data_dir = "data"
[http]
[[http.tokens]]
name = "t"
sha256 = "{sha}"
[log]
[store]
[[carriers]]
name = "c"
host = "127.0.0.1"
port = 3550
system_id = "gw"
password = "pw"
"""


def write_config(directory: Path, extra: str) -> Path:
    path = directory / "gateway.toml"
    path.write_text(CARRIER.format(sha="0" * 64) + extra)
    return path


def test_tls_keys_without_tls_are_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'tls_ca_file = "ca.pem"\ntls_verify = false\ntls_key = "k"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    errors = caught.value.errors
    assert (
        "carriers[0].tls_ca_file: set but tls is false (set tls = true to connect with TLS)"
        in errors
    )
    assert any(e.startswith("carriers[0].tls_verify: set but tls is false") for e in errors)
    assert "carriers[0].tls_key: set without tls_cert" in errors


def test_tls_files_are_checked_at_load_relative_to_the_file(tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(pki.ca.read_bytes())
    config = load_config(write_config(tmp_path, 'tls = true\ntls_ca_file = "certs/ca.pem"\n'))
    assert config.carriers[0].tls_ca_file == str(tmp_path / "certs" / "ca.pem")

    missing = write_config(tmp_path, 'tls = true\ntls_ca_file = "certs/nope.pem"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert caught.value.errors == [
        f"carriers[0].tls_ca_file: cannot load CA certificates from "
        f"{tmp_path / 'certs' / 'nope.pem'}: No such file or directory"
    ]

    (tmp_path / "junk.pem").write_text("not a certificate\n")
    junk = write_config(tmp_path, 'tls = true\ntls_ca_file = "junk.pem"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(junk)
    (error,) = caught.value.errors
    assert error.startswith("carriers[0].tls_ca_file: cannot load CA certificates from")

    # A key that is not the certificate's.
    mismatched = write_config(
        tmp_path,
        f'tls = true\ntls_cert = "{pki.client_cert}"\ntls_key = "{pki.server_key}"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(mismatched)
    (error,) = caught.value.errors
    assert error.startswith("carriers[0].tls_cert: cannot load the client certificate"), error
    assert "mismatch" in error


def test_check_config_names_the_bad_tls_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'tls = true\ntls_cert = "client.pem"\n')
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert done.returncode != 0
    assert "carriers[0].tls_cert: cannot load the client certificate" in done.stderr + done.stdout


async def test_simulator_cli_prints_its_tls_port(tmp_path: Path, pki: Pki) -> None:
    text = (ROOT / "conf" / "simulator.toml").read_text()
    text = text.replace(
        "[control]",
        f'[smpp.tls]\ncert = "{pki.server_cert}"\nkey = "{pki.server_key}"\n\n[control]',
        1,
    )
    path = tmp_path / "simulator.toml"
    path.write_text(text)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smsc_simulator.cli",
        "--config",
        str(path),
        "--port",
        "0",
        "--tls-port",
        "0",
        "--control-port",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        match = re.search(r"smpp_port=(\d+) .*control_port=(\d+) smpp_tls_port=(\d+)$", line)
        assert match, line
        client = EsmeClient(SessionConfig(response_timeout=5.0, bind_timeout=5.0))
        loop = asyncio.get_running_loop()
        await loop.create_connection(
            lambda: SmppConnection(Session(Role.ESME, client.config, loop.time()), client),
            "127.0.0.1",
            int(match.group(3)),
            ssl=ssl.create_default_context(cafile=str(pki.ca)),
        )
        assert await client.bind("trx", "smsgw", "secret") == Status.ROK
        await client.unbind()
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 10)


async def _metrics(gateway: Gateway) -> str:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{gateway.http_port}/metrics") as response,
    ):
        return await response.text()
