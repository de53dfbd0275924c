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

1. Intake (``url_refusal``, no DNS) reads the host as the callback client
   (``gateway.engine.callback_client``) will connect to it: yarl's
   normalised form (IDNA with NFKC, so ``127。0。0。1`` and ``①②⑦.0.0.1`` are
   ``127.0.0.1``), trailing dots dropped. A host whose last label is a number is an IPv4
   address and must be written as one (``a.b.c.d``): ``2130706433``, ``0x7f.1``,
   ``0177.0.0.1``, ``127.1`` are refused whatever they stand for. An IP literal outside the
   rules and ``localhost`` are refused with 400.
2. Resolution: the callback client keeps of a name's addresses only those the policy
   allows (``allowed_addresses``: a name that resolves, or later re-resolves, to 10.0.0.5
   is never reached).
3. The socket: the client checks the address each socket is about to connect to (before
   ``connect()``), and the connected peer (``getpeername()``) once the connection is up,
   before the TLS handshake and before a byte of the request is written. An IP literal
   never reaches the resolver; these two checks hold whatever the URL's spelling and
   whatever path led to the address.

A callback refused at send time fails like an unreachable receiver and, once it is refused
by ``allows_url`` (the rules changed since intake), is parked at once.
"""

from __future__ import annotations

import errno
import ipaddress
import re
from collections.abc import Sequence
from typing import Any, Final

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
    (EACCES) and a strerror, so the error text says why."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)


def url_host(url: str) -> str | None:
    """The host of ``url`` as the callback client connects to it (yarl's normalised, IDNA-encoded
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


def allowed_addresses(
    policy: CallbackPolicy, host: str, addresses: Sequence[tuple[int, tuple[Any, ...]]]
) -> list[tuple[int, tuple[Any, ...]]]:
    """The resolved ``(family, sockaddr)`` pairs of ``host`` that the policy allows, in
    their order; ``CallbackRefused`` when none is left (a name that resolves, or later
    re-resolves, to 10.0.0.5 is never reached)."""
    allowed = [a for a in addresses if policy.address_allowed(str(a[1][0]))]
    if not allowed:
        raise CallbackRefused(f"callback host {host} resolves to no address the policy allows")
    return allowed
