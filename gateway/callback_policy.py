"""Where status callbacks may go: the ``[callbacks]`` allow-list, checked at intake and at
connect time.

A gateway that POSTs to any URL a client names is a server-side request forgery tool: a
client could make it call the cloud metadata service (169.254.169.254), the admin port of a
database on the private network, or the gateway's own API on 127.0.0.1. The policy:

- ``allowed_hosts`` (host names; ``"*.example.net"`` matches any subdomain of example.net):
  when the list is not empty, a callback URL must name one of them, or an IP address inside
  ``allowed_networks``. Empty (the default): any host name.
- ``allowed_networks`` (CIDRs): addresses a callback may reach even though they are not
  public (a receiver on the private network). Empty by default.
- Every address a callback would connect to must be public (``ipaddress``'s ``is_global``:
  not loopback, private, link-local, CGNAT, unique-local, multicast, reserved or
  unspecified) or inside ``allowed_networks``.

Intake (``url_refusal``) refuses with 400 what it can see without DNS: a host outside
``allowed_hosts``, an IP literal or ``localhost`` outside the rules. At send time the
callback's session uses ``PolicyResolver``, which resolves the name and drops every address
the policy forbids before aiohttp connects (so a name that resolves, or later re-resolves,
to 10.0.0.5 is never reached: no time-of-check/time-of-use gap); a callback with no
allowed address fails like an unreachable receiver and, once it is refused by
``allows_url`` (the rules changed since intake), is parked at once.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


class CallbackPolicy:
    def __init__(self, allowed_hosts: Sequence[str] = (), allowed_networks: Sequence[str] = ()):
        self.allowed_hosts = tuple(h.lower().rstrip(".") for h in allowed_hosts)
        self.allowed_networks: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allowed_networks
        )

    @classmethod
    def from_config(cls, config: Any) -> CallbackPolicy:
        """From a ``CallbacksConfig`` (``gateway.config``)."""
        return cls(config.allowed_hosts, config.allowed_networks)

    def address_allowed(self, address: str | IpAddress) -> bool:
        try:
            ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allowed_networks):
            return True
        return ip.is_global

    def host_allowed(self, host: str) -> bool:
        """Whether the host name (not an IP literal) passes ``allowed_hosts``."""
        name = host.lower().rstrip(".")
        if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
            return False  # RFC 6761: always loopback; reachable only as an allowed network IP
        if not self.allowed_hosts:
            return True
        for pattern in self.allowed_hosts:
            if pattern.startswith("*."):
                if name.endswith(pattern[1:]):
                    return True
            elif name == pattern:
                return True
        return False

    def url_refusal(self, url: str) -> str | None:
        """Why a callback URL is refused at intake (no DNS lookup), or None."""
        host = urlsplit(url).hostname or ""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if not self.host_allowed(host):
                return f"host {host!r} is not in the gateway's callback allow-list"
            return None
        if not self.address_allowed(ip):
            return f"address {host} is not public and not in the gateway's allowed networks"
        return None

    def allows_url(self, url: str) -> bool:
        return self.url_refusal(url) is None


class PolicyResolver(AbstractResolver):
    """aiohttp resolver that keeps only the addresses the policy allows."""

    def __init__(self, policy: CallbackPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        allowed = [r for r in results if self.policy.address_allowed(r["host"])]
        if not allowed:
            raise OSError(f"callback host {host} resolves to no address the policy allows")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


def policy_session(
    policy: CallbackPolicy, concurrency: int, timeout: float
) -> aiohttp.ClientSession:
    """The callback sender's session: pooled, and connecting only where the policy allows."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=concurrency, ttl_dns_cache=300, resolver=PolicyResolver(policy)
        ),
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers={"User-Agent": "smsgw"},
    )
