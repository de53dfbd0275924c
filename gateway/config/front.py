"""``[front]``: the SMPP server front, where upstream ESMEs bind to smsgw as to an SMSC.

The section may be left out: then no front listens. With it, ``[[front.accounts]]`` lists
the upstream accounts. Passwords are stored as salted PBKDF2-SHA256 hashes
(``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``); ``python -m gateway.front.passwords``
prints one. A salted, slow hash and not the bare SHA-256 of the HTTP tokens: an SMPP
password is at most 8 characters, which an unsalted fast hash would give away to a search.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from gateway.config.carriers import MAX_SYSTEM_ID, MAX_WINDOW
from gateway.config.common import MAX_PORT
from gateway.config.loader import all_of, check, in_range, max_length, non_empty, regex
from gateway.front.passwords import HASH_PATTERN


def _cidr(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"must be an IP network such as 10.0.0.0/8 or 127.0.0.1, got {value!r}"
    return None


def _cidrs(values: tuple[str, ...]) -> str | None:
    for value in values:
        error = _cidr(value)
        if error:
            return error
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class FrontAccountConfig:
    """``[[front.accounts]]``: one upstream system allowed to bind."""

    system_id: str = field(metadata=check(all_of(non_empty, max_length(MAX_SYSTEM_ID))))
    password_hash: str = field(
        repr=False,
        metadata=check(regex(HASH_PATTERN, "a hash from python -m gateway.front.passwords")),
    )
    allowed_ips: tuple[str, ...] = field(default=("127.0.0.1/32",), metadata=check(_cidrs))
    """Networks (CIDR) a bind may come from; a bind from elsewhere gets ESME_RBINDFAIL."""
    max_binds: int = field(default=4, metadata=check(in_range(1, 1000)))
    """Binds of this account at once; one more gets ESME_RBINDFAIL."""
    window: int = field(default=50, metadata=check(in_range(1, MAX_WINDOW)))
    """submit_sm in flight (not yet answered) per bind; one more gets ESME_RMSGQFUL. Each
    part of a long message is answered on its own once held, so 1 (stop and wait) works."""
    tps: float = field(default=0.0, metadata=check(in_range(0, None)))
    """submit_sm per second across the account's binds (one second of burst); 0 is
    unlimited. Over it, ESME_RTHROTTLED."""
    default_sender: str = ""
    """Sender used when a submit_sm has an empty source_addr; "" refuses such submits."""
    allowed_senders: tuple[str, ...] = ()
    """Sender ids (source_addr) the account may use; () allows any valid sender. Others get
    ESME_RINVSRCADR."""
    deliver_window: int = field(default=10, metadata=check(in_range(1, MAX_WINDOW)))
    """deliver_sm (receipts, MO) in flight per receiver bind."""
    hold_max_age: float = field(default=72 * 3600.0, metadata=check(in_range(1, None)))
    """Seconds a receipt or MO is held for this account while no receiver is bound; older
    ones are dropped (logged and counted). 72 h rides out a long weekend."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FrontConfig:
    """``[front]``: the SMPP listener for upstream ESMEs."""

    host: str = field(default="127.0.0.1", metadata=check(non_empty))
    port: int = field(default=2776, metadata=check(in_range(0, MAX_PORT)))
    """0 picks a free port (tests)."""
    system_id: str = field(default="smsgw", metadata=check(max_length(MAX_SYSTEM_ID)))
    """Our system_id in bind_resp."""
    tls_cert: str = ""
    """PEM certificate chain; with ``tls_key``, the listener speaks TLS only."""
    tls_key: str = ""
    enquire_link_interval: float = field(default=30.0, metadata=check(in_range(0.01, None)))
    response_timeout: float = field(default=30.0, metadata=check(in_range(0.01, None)))
    bind_timeout: float = field(default=30.0, metadata=check(in_range(0.01, None)))
    retry_delay: float = field(default=10.0, metadata=check(in_range(0.01, None)))
    """Seconds before a held deliver_sm that failed (error response, timeout) is tried again."""
    reassembly_timeout: float = field(default=30.0, metadata=check(in_range(0.1, None)))
    """Seconds (from its first part) to wait for the missing parts of a long message (UDH
    or SAR); then the parts that came, each already answered ROK, are sent joined as they
    are, as an SMSC delivers every part it accepted."""
    bind_failure_delay: float = field(default=1.0, metadata=check(in_range(0, 30)))
    """Seconds a failed bind (wrong password, unknown system_id) waits for its bind_resp,
    from a client address's second failure within ``bind_failure_window`` on (the first is
    answered at once). Binds from one address are checked one at a time, so a guesser gets
    one try a second however many connections it opens."""
    bind_failures_per_address: int = field(default=10, metadata=check(in_range(1, None)))
    """Failed binds from one client address within ``bind_failure_window`` (as a leaky
    bucket: this many at once, or a steady rate above this many per window) before every
    bind from it is refused for ``bind_lockout`` seconds (ESME_RBINDFAIL, password unread)."""
    bind_failures_per_system_id: int = field(default=30, metadata=check(in_range(1, None)))
    """The same for one system_id, across addresses (only failures from an address the
    account allows count: others are refused before their password is read)."""
    bind_failure_window: float = field(default=600.0, metadata=check(in_range(1, None)))
    bind_lockout: float = field(default=900.0, metadata=check(in_range(1, None)))
    """Seconds a locked-out address or system_id is refused. Binds already up stay up."""
    hide_unknown_system_id: bool = False
    """Answer a bind with an unknown system_id, or from an address its account does not
    allow, as a wrong password (ESME_RINVPASWD, after the same password hashing), so binds
    cannot tell which system_ids exist. Off by default: ESME_RINVSYSID and ESME_RBINDFAIL
    are what ESMEs and their operators expect to see."""
    accounts: tuple[FrontAccountConfig, ...] = ()
    mo_routes: dict[str, str] = field(default_factory=dict)
    """Destination number (as in the MO, e.g. "+447700900000" or a short code) -> the
    upstream account its MO goes to. The MO router (keyword rules) may also call
    ``FrontServer.deliver_mo`` directly."""

    def validate(self) -> list[str]:
        errors: list[str] = []
        seen: dict[str, int] = {}
        for n, account in enumerate(self.accounts):
            if account.system_id in seen:
                errors.append(
                    f"accounts[{n}].system_id: duplicate of accounts[{seen[account.system_id]}]"
                )
            seen.setdefault(account.system_id, n)
        if bool(self.tls_cert) != bool(self.tls_key):
            errors.append("tls_cert: tls_cert and tls_key go together")
        for number, account_id in self.mo_routes.items():
            if account_id not in seen:
                errors.append(f"mo_routes.{number}: unknown account {account_id!r}")
        return errors

    def account(self, system_id: str) -> FrontAccountConfig | None:
        for account in self.accounts:
            if account.system_id == system_id:
                return account
        return None
