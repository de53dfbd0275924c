"""Test certificates made at test time with the ``openssl`` command (as the front's TLS test
does): a CA, a server certificate it signed for 127.0.0.1 and ``smsc.test``, a client
certificate it signed, and an unrelated CA (the wrong trust anchor). EC P-256 keys, valid
two days."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")

SERVER_NAME = "smsc.test"
"""The DNS name in the server certificate (with IP address 127.0.0.1)."""

_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A CA that signed none of the above."""


def _openssl(*args: str) -> None:
    assert OPENSSL is not None
    done = subprocess.run(
        [OPENSSL, "req", "-x509", *_KEY, *args], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "-subj",
        f"/CN=smsgw test {name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    )
    return cert, key


def _leaf(directory: Path, name: str, ca: tuple[Path, Path], *extensions: str) -> None:
    args = ["-CA", str(ca[0]), "-CAkey", str(ca[1]), "-subj", f"/CN={name}"]
    for extension in ("basicConstraints=critical,CA:FALSE", *extensions):
        args += ["-addext", extension]
    _openssl(
        *args, "-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.pem")
    )


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "ca")
    other = _ca(directory, "other-ca")
    _leaf(
        directory,
        "server",
        ca,
        f"subjectAltName=DNS:{SERVER_NAME},IP:127.0.0.1",
        "extendedKeyUsage=serverAuth",
    )
    _leaf(directory, "client", ca, "extendedKeyUsage=clientAuth")
    return Pki(
        ca=ca[0],
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=other[0],
    )


class RefusingTlsServer:
    """A TLS server on blocking OpenSSL sockets that asks for a client certificate signed by
    ``ca`` and refuses the handshake otherwise, sending the TLS alert as OpenSSL servers do
    (stunnel, nginx in front of an SMSC). asyncio's servers drop the TCP connection without
    the alert, so the simulator cannot show this; here it runs in a thread. ``with`` it."""

    def __init__(self, pki: Pki) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        self.context.load_verify_locations(pki.ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="refusing-tls", daemon=True)

    def __enter__(self) -> RefusingTlsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(5)
            try:
                tls = self.context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
            except OSError:
                sock.close()
                continue
            try:
                tls.do_handshake()  # sends the alert and raises without a good certificate
                tls.recv(1)
            except (ssl.SSLError, OSError):
                self.refused += 1
                self._linger(tls)
            finally:
                tls.close()

    @staticmethod
    def _linger(sock: socket.socket) -> None:
        """Close as nginx's lingering close does: stop writing, then read what the client
        already sent (its bind PDU, sent before the alert reached it) until it closes. A
        close with unread bytes makes the kernel send a RST, which can overtake the alert at
        the client and leave it with "connection reset" instead of the TLS reason."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(2)
            while sock.recv(4096):
                pass
        except OSError:
            pass
