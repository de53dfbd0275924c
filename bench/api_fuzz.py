"""Schemathesis against the gateway's own OpenAPI document (issue 7): ``python -m bench.api_fuzz``.

    .venv/bin/python -m bench.api_fuzz                     # 200 examples per operation
    .venv/bin/python -m bench.api_fuzz --max-examples 20   # about what CI runs

Starts the gateway as a process on 127.0.0.1 (HTTP port 0, SQLite in a temp dir; its one
carrier points at a closed port, so accepted messages simply wait in the queue) and runs
``schemathesis run <gateway>/v1/openapi.json`` with a valid bearer token and the checks
``not_a_server_error`` (no 5xx) and ``status_code_conformance`` (every status answered is
documented for that operation), plus the response-shape checks. Prints schemathesis' summary
and exits with its code. A local SMTP sink (aiosmtpd on 127.0.0.1, port 0) is the gateway's
``[digest.smtp]``, so ``POST /v1/interactions/email`` sends for real.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller

from bench.configs import GatewaySettings
from bench.lab import start_gateway
from bench.procs import ProcessSet

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


@dataclass
class ApiFuzzResult:
    exit_code: int
    output: str
    cases: int
    """Test cases schemathesis reports it generated (0 when its summary could not be read)."""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Sink:
    """Takes every e-mail and forgets it."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


class _SinkController(Controller):
    """aiosmtpd's Controller on port 0: the port is learnt before its readiness probe."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def _digest_toml(smtp_port: int) -> str:
    return (
        '[digest]\nfrom_address = "fuzz@example.net"\n'
        f'[digest.smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
    )


def run(
    tmp: Path,
    max_examples: int,
    seed: int = 1,
    phases: str = "examples,coverage,fuzzing,stateful",
    timeout: float = 600.0,
) -> ApiFuzzResult:
    procs = ProcessSet(tmp, pin=False)
    smtp = _SinkController(_Sink(), hostname="127.0.0.1", port=0)
    smtp.start()
    try:
        gateway = start_gateway(
            procs,
            tmp / "gw",
            GatewaySettings(
                smsc_port=_closed_port(),
                binds=1,
                window=10,
                synchronous="normal",
                extra_toml=_digest_toml(smtp.port),
            ),
        )
        command = [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{gateway.url}/v1/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            str(max_examples),
            "--seed",
            str(seed),
            "--phases",
            phases,
            "--workers",
            "1",
            "-H",
            f"Authorization: Bearer {gateway.files.token}",
        ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=tmp,
            env={**os.environ, "NO_COLOR": "1"},
        )
        output = done.stdout + done.stderr
        if procs.procs[0].popen.poll() is not None:
            output += f"\nthe gateway exited during the run:\n{procs.procs[0].log_tail()}"
            return ApiFuzzResult(1, output, _cases(output))
        return ApiFuzzResult(done.returncode, output, _cases(output))
    finally:
        procs.stop_all()
        smtp.stop()


def _cases(output: str) -> int:
    match = re.search(r"(\d[\d,]*) (?:generated|test cases)", output)
    return int(match.group(1).replace(",", "")) if match else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_fuzz", description=__doc__)
    parser.add_argument("--max-examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="smsgw-api-fuzz-") as tmp:
        result = run(Path(tmp), args.max_examples, args.seed, args.phases)
    print(result.output)
    print(f"test cases: {result.cases}; exit code {result.exit_code}")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
