"""``[callbacks]``: where status callbacks (and webhooks) may be POSTed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.config.loader import check


def _cidrs(value: Any) -> str | None:
    import ipaddress

    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"{item!r} is not a network in CIDR form (e.g. 10.1.0.0/16)"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbacksConfig:
    """``[callbacks]`` (optional): where status callbacks may be POSTed
    (``gateway.callback_policy``). Left out: any public host; never loopback, private,
    link-local or other non-public addresses (server-side request forgery)."""

    allowed_hosts: tuple[str, ...] = ()
    """Host names callbacks may name (``"*.example.net"`` for subdomains); empty: any."""
    allowed_networks: tuple[str, ...] = field(default=(), metadata=check(_cidrs))
    """CIDRs callbacks may reach although they are not public addresses."""
