"""The notify protocol against a real datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app.sdnotify import Notifier


@pytest.fixture
def systemd_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield sock, path
    sock.close()


def test_ready_status_and_stopping_arrive_as_datagrams(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    sock, path = systemd_socket
    n = Notifier({"NOTIFY_SOCKET": path})
    n.ready("2/2 binds up")
    assert sock.recv(4096) == b"READY=1\nSTATUS=2/2 binds up"
    n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_abstract_namespace_address() -> None:
    name = f"smsgw-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
        assert sock.recv(64) == b"READY=1"
    finally:
        sock.close()


def test_without_systemd_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled and not n.notify("READY=1")
    assert n.watchdog_interval is None


def test_watchdog_is_half_the_interval_and_only_for_our_pid() -> None:
    ours = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "20000000"})
    assert ours.watchdog_interval == 10.0
    other = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None


async def test_watchdog_pings_from_the_event_loop(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    sock, path = systemd_socket
    sock.setblocking(False)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})  # ping every 20 ms
    n.start_watchdog()
    loop = asyncio.get_running_loop()
    pings = [await asyncio.wait_for(loop.sock_recv(sock, 64), 2.0) for _ in range(3)]
    await n.close()
    assert pings == [b"WATCHDOG=1"] * 3
