"""Where status callbacks may go: the ``[callbacks]`` allow-list, checked at intake, when
the name is resolved and on the socket itself.

A gateway that POSTs to any URL a client names is a server-side request forgery tool: a
client could make it call the cloud metadata service (169.254.169.254), the admin port of a
database on the private network, or the gateway's own API on 127.0.0.1. The policy:

- ``allowed_hosts`` (host names; ``"*.example.net"`` matches any subdomain of example.net):
  when the list is not empty, a callback URL must name one of them, or an IP address inside
  ``allowed_networks``. Empty (the default): any host name.
- ``allowed_networks`` (CIDRs): addresses a callback may reach even though they are not
  public (a receiver on the private network; ``127.0.0.0/8`` for a receiver on the gateway's
  own machine, as the end-to-end tests do). Empty by default: the only way to reach a
  non-public address is to list it here.
- Every address a callback would connect to must be public (``ipaddress``'s ``is_global``
  and not multicast: not loopback, private, link-local, CGNAT, unique-local, reserved or
  unspecified) or inside ``allowed_networks``. An IPv6 address that carries an IPv4 one
  (IPv4-mapped ``::ffff:0:0/96``, IPv4-translated ``::ffff:0:0:0/96``, IPv4-compatible
  ``::/96``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged by that IPv4 address, so
  ``[64:ff9b::7f00:1]`` is loopback; Teredo and local-use NAT64 (``64:ff9b:1::/48``) are
  never public.

Three checks, each on what the HTTP client really uses:

1. Intake (``url_refusal``, no DNS) reads the host as aiohttp will connect to it: yarl's
   normalised form (IDNA with NFKC, so ``127。0。0。1`` and ``①②⑦.0.0.1`` are
   ``127.0.0.1``), trailing dots dropped. A host whose last label is a number is an IPv4
   address and must be written as one (``a.b.c.d``): ``2130706433``, ``0x7f.1``,
   ``0177.0.0.1``, ``127.1`` are refused whatever they stand for. An IP literal outside the
   rules and ``localhost`` are refused with 400.
2. Resolution: the callback session resolves names through ``PolicyResolver``, which drops
   every address the policy forbids (a name that resolves, or later re-resolves, to
   10.0.0.5 is never reached).
3. The socket: ``PolicyConnector`` checks the address each socket is about to connect to
   (its socket factory, before ``connect()``), and the connected peer
   (``getpeername()``) once the connection is up and before a byte of the request is
   written. aiohttp connects to an IP literal without asking the resolver; these two
   checks hold whatever the URL's spelling and whatever path led to the address.

A callback refused at send time fails like an unreachable receiver and, once it is refused
by ``allows_url`` (the rules changed since intake), is parked at once.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from collections.abc import Sequence
from typing import Any, Final

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.resolver import DefaultResolver
from aiohttp.tracing import Trace
from yarl import URL

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")

_NUMERIC_LABEL: Final = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)
"""A label that the C library's ``inet_aton`` reads as a number (WHATWG's "ends in a
number"): a host whose last label is one is an IPv4 address, however written."""

_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL: Final = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local use
_IPV4_TRANSLATED: Final = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
_IPV4_COMPATIBLE: Final = ipaddress.ip_network("::/96")  # RFC 4291, deprecated


class CallbackRefused(OSError):
    """A connection the callback policy forbids (raised before a byte is sent). An errno
    (EACCES) and a strerror, so aiohttp's ClientConnectorError shows the reason."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)


def url_host(url: str) -> str | None:
    """The host of ``url`` as aiohttp will connect to it (yarl's normalised, IDNA-encoded
    form, so full-width dots and enclosed digits are already ASCII), without trailing
    dots or IPv6 brackets; None when the URL has no host or yarl refuses it."""
    try:
        host = URL(url).raw_host
    except (ValueError, TypeError):
        return None
    if not host:
        return None
    return host.rstrip(".").lower() or None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, translated, compatible, NAT64, 6to4)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64 or ip in _IPV4_TRANSLATED:
        return low32
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are IPv6's own
        return low32
    return None


class CallbackPolicy:
    def __init__(self, allowed_hosts: Sequence[str] = (), allowed_networks: Sequence[str] = ()):
        self.allowed_hosts = tuple(_host_pattern(h) for h in allowed_hosts)
        self.allowed_networks: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allowed_networks
        )

    @classmethod
    def from_config(cls, config: Any) -> CallbackPolicy:
        """From a ``CallbacksConfig`` (``gateway.config``)."""
        return cls(config.allowed_hosts, config.allowed_networks)

    def address_allowed(self, address: str | IpAddress) -> bool:
        """Whether a callback may connect to this address (see the module's rules)."""
        try:
            ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        except ValueError:
            return False
        if any(ip.version == net.version and ip in net for net in self.allowed_networks):
            return True
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.scope_id is not None:
                return False  # a zone index: link-local by nature
            inner = embedded_ipv4(ip)
            if inner is not None:
                return self.address_allowed(inner)
            if ip in _NAT64_LOCAL or ip.teredo is not None:
                return False
        return ip.is_global and not ip.is_multicast

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
        host = url_host(url)
        if host is None:
            return "the URL names no host the HTTP client can connect to"
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
                return (
                    f"host {host!r} is an IPv4 address in a non-canonical form;"
                    " write it as four decimal numbers (a.b.c.d)"
                )
            if not self.host_allowed(host):
                return f"host {host!r} is not in the gateway's callback allow-list"
            return None
        if not self.address_allowed(ip):
            return f"address {host} is not public and not in the gateway's allowed networks"
        return None

    def allows_url(self, url: str) -> bool:
        return self.url_refusal(url) is None


def _host_pattern(host: str) -> str:
    """An ``allowed_hosts`` entry in the form ``url_host`` gives (IDNA, lower case)."""
    name = host.strip().lower().rstrip(".")
    wildcard = name.startswith("*.")
    bare = name[2:] if wildcard else name
    try:
        bare = URL.build(scheme="http", host=bare).raw_host or bare
    except ValueError:
        pass
    return ("*." + bare) if wildcard else bare


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


class PolicyConnector(aiohttp.TCPConnector):
    """A TCP connector that connects only where the policy allows: names resolved through
    ``PolicyResolver``; every socket's target address checked before ``connect()``; the
    connected peer checked before the request is written (an IP literal in the URL never
    reaches the resolver, so these are the checks that hold for every spelling)."""

    def __init__(
        self, policy: CallbackPolicy, *, resolver: AbstractResolver | None = None, **kw: Any
    ) -> None:
        self.policy = policy
        super().__init__(
            resolver=resolver or PolicyResolver(policy), socket_factory=self._socket, **kw
        )

    def _socket(self, addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        if not self.policy.address_allowed(str(sockaddr[0])):
            raise CallbackRefused(f"callback connection to {sockaddr[0]} refused by the policy")
        return socket.socket(family, type_, proto)

    async def _create_connection(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
    ) -> ResponseHandler:
        proto = await super()._create_connection(req, traces, timeout)
        transport = proto.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        address = str(peer[0]) if peer else ""
        if not self.policy.address_allowed(address):
            proto.close()
            refused = CallbackRefused(
                f"callback connected to {address or 'no peer'}: refused by the policy"
            )
            raise aiohttp.ClientConnectorError(req.connection_key, refused) from refused
        return proto


def policy_session(
    policy: CallbackPolicy, concurrency: int, timeout: float
) -> aiohttp.ClientSession:
    """The callback sender's session: pooled, and connecting only where the policy allows."""
    return aiohttp.ClientSession(
        connector=PolicyConnector(policy, limit=concurrency, ttl_dns_cache=300),
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers={"User-Agent": "smsgw"},
    )
