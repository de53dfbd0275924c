"""The gateway's configuration: one frozen dataclass tree, loaded and checked once.

``load_config(path)`` reads a TOML file through :mod:`gateway.confload`: every missing key,
unknown key (typos included), wrong type, value out of range and cross-field conflict is
collected, each with its key path, into one :class:`~gateway.confload.ConfigError`, and the
daemon refuses to start. Nothing is half-loaded.

Every section must be present in the file: ``[node]``, ``[http]`` (with at least one
``[[http.tokens]]``), ``[log]``, ``[store]`` and at least one ``[[carriers]]``. Keys inside a
section may be left out where a default is documented below; ``node.data_dir`` and a
carrier's ``name``, ``host``, ``port``, ``system_id`` and ``password`` have none.

Relative paths: ``node.data_dir`` and a carrier's TLS files (``tls_ca_file``, ``tls_cert``,
``tls_key``) are relative to the directory of the configuration file (``load_config`` makes
them absolute, and checks that the TLS files load), and ``store.path`` is relative to
``node.data_dir``.

Secrets: a carrier's password and a token's hash never appear in ``repr()``/``str()``. HTTP
bearer tokens are stored as SHA-256 hex digests only; :func:`hash_token` computes one.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import os
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from gateway.binds import TlsSettings, TlsSetupError, TlsVersion
from gateway.campaigns.window import SendWindow, WindowError, parse_hours
from gateway.confload import (
    ConfigError,
    all_of,
    check,
    in_range,
    load_toml,
    max_length,
    non_empty,
    regex,
)
from gateway.front.config import FrontConfig
from gateway.links.config import LinksConfig
from gateway.signing import WEBHOOK_SIGNER, secrets_problem
from gateway.smpp.constants import Status
from gateway.smpp.receipt import IdForm
from gateway.store.claims import DEFAULT_CLAIM_SECONDS, DEFAULT_NODE_ID

__all__ = [
    "CarrierConfig",
    "ConfigError",
    "GatewayConfig",
    "HttpConfig",
    "IdForm",
    "LogConfig",
    "NodeConfig",
    "RetentionConfig",
    "Scope",
    "StoreConfig",
    "TokenConfig",
    "hash_token",
    "load_config",
]

BindTypeName = Literal["tx", "rx", "trx"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
Concat = Literal["udh8", "udh16", "sar", "payload"]

NAME_PATTERN = r"[a-z0-9_-]+"
"""Carrier and token names: they appear in logs, metrics labels and bind names."""

MAX_PORT = 65535
"""TCP ports are 16-bit."""

# Lengths of the bind fields: SMPP 3.4 section 5.2 gives each C-octet string a maximum size
# that includes its terminating NUL, so the text may hold one character less.
MAX_SYSTEM_ID = 15  # 5.2.1: system_id, 16 octets
MAX_PASSWORD = 8  # 5.2.2: password, 9 octets
MAX_SYSTEM_TYPE = 12  # 5.2.3: system_type, 13 octets
MAX_ADDRESS_RANGE = 40  # 5.2.7: address_range, 41 octets

TON_VALUES = range(0, 7)
"""5.2.5: the defined type_of_number values (unknown 0 .. abbreviated 6)."""
NPI_VALUES = (0, 1, 3, 4, 6, 8, 9, 10, 14, 18)
"""5.2.6: the defined numbering_plan_indicator values (unknown 0 .. internet 14, WAP 18)."""

MAX_REGISTERED_DELIVERY = 0x1F
"""5.2.17: bits 0-4 of registered_delivery are defined, bits 5-7 are reserved."""

MAX_INTERFACE_VERSION = 0x34
"""5.2.4: 0x00-0x33 mean SMPP 3.3 or earlier, 0x34 means 3.4; we speak nothing newer."""

MAX_WINDOW = 1000
"""The spec sets no window; carriers ask for 10-100. 1000 catches a stray digit while leaving
room for a carrier that allows more."""

MIN_HTTP_BODY = 1024
"""Smallest useful limit: a one-message request (a number, a 160-character text, the JSON
around them) stays well under 1 KiB."""

DEFAULT_HTTP_BODY = 16 * 1024 * 1024
"""16 MiB: room for a bulk request of a few hundred thousand recipients (~40 bytes of JSON
each) while bounding what one request can make the gateway hold in memory."""


def hash_token(token: str) -> str:
    """The SHA-256 hex digest of a bearer token, as ``[[http.tokens]] sha256`` stores it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- checks -------------------------------------------------------------------------------


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be above 0, got {value:g}"


def _ton(value: int) -> str | None:
    if value in TON_VALUES:
        return None
    return f"must be a type_of_number of SMPP 3.4 5.2.5 (0..6), got {value}"


def _npi(value: int) -> str | None:
    if value in NPI_VALUES:
        return None
    shown = ", ".join(str(v) for v in NPI_VALUES)
    return f"must be a numbering_plan_indicator of SMPP 3.4 5.2.6 ({shown}), got {value}"


def _time_zone(value: str) -> str | None:
    if value == "UTC":
        return None  # always known, even without a tz database
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {value!r} (an IANA name such as 'Europe/Paris')"
    return None


def _unique(items: tuple[Any, ...], attr: str, section: str) -> list[str]:
    errors: list[str] = []
    seen: dict[Any, int] = {}
    for n, item in enumerate(items):
        value = getattr(item, attr)
        if value in seen:
            errors.append(f"{section}[{n}].{attr}: duplicate of {section}[{seen[value]}].{attr}")
        seen.setdefault(value, n)
    return errors


_name_check = all_of(non_empty, regex(NAME_PATTERN, "lower-case letters, digits, _ and -"))


# -- sections -----------------------------------------------------------------------------


MAX_NODE_ID: Final = 64
"""Characters of ``[node] id``: it is written into every claimed row."""

MIN_CLAIM_SECONDS: Final = 3.0
"""Shorter leases would be renewed more often than once a second."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """``[node]``: this gateway instance."""

    id: str = field(
        default=DEFAULT_NODE_ID,
        metadata=check(
            all_of(
                non_empty,
                max_length(MAX_NODE_ID),
                regex(r"[A-Za-z0-9_.-]+", "letters, digits, _ . -"),
            )
        ),
    )
    """Names this instance in logs and stored records, and owns its claims on stored work
    (``claimed_by``, gateway.store.claims). It must stay the same across restarts (a node
    takes its own claims back at start) and differ between nodes sharing one database; the
    default suits the one node of an SQLite file."""
    claim_seconds: float = field(
        default=DEFAULT_CLAIM_SECONDS, metadata=check(in_range(MIN_CLAIM_SECONDS, 3600))
    )
    """Lease of this node's claims on stored work (pending messages, callbacks, front
    outbox items, running campaigns and imports, pending MOs): renewed every third of it
    while the node lives; another node may take a claim only once it has expired."""
    data_dir: str = field(metadata=check(non_empty))
    """Where the gateway keeps its files; relative to the configuration file's directory."""
    time_zone: str = field(default="UTC", metadata=check(_time_zone))
    """IANA time zone for local times (schedules, reports)."""
    development: bool = False
    """A development machine: the credentials published in this repository
    (:data:`KNOWN_TOKENS`, :data:`KNOWN_FRONT_PASSWORDS`) are accepted. Without it the
    configuration is refused while it holds one of them (``conf/gateway.toml`` sets it so
    that ``make run`` works; ``scripts/install-service.sh`` writes a file without it)."""

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def tzinfo(self) -> datetime.tzinfo:
        if self.time_zone == "UTC":
            return datetime.UTC
        return zoneinfo.ZoneInfo(self.time_zone)


KNOWN_TOKENS: Final = ("dev-token-change-me",)
"""HTTP tokens whose clear text this repository publishes (conf/gateway.toml, README.md):
anyone can call an API that accepts one."""

KNOWN_FRONT_PASSWORDS: Final = ("crmpass",)
"""Upstream account passwords published in conf/gateway.toml (the ``crm`` account)."""


def known_credentials(config: GatewayConfig) -> list[str]:
    """One error per credential of ``config`` published in this repository, unless
    ``[node] development`` says this is a development machine."""
    if config.node.development:
        return []
    from gateway.front.config import verify_password

    advice = (
        "refused outside development: make a new one (see conf/gateway.toml), or set"
        " [node] development = true on a development machine"
    )
    known = {hash_token(token): token for token in KNOWN_TOKENS}
    errors = [
        f"http.tokens[{i}].sha256: the token {known[t.sha256]!r} published in this"
        f" repository; {advice}"
        for i, t in enumerate(config.http.tokens)
        if t.sha256 in known
    ]
    if config.front is not None:
        for i, account in enumerate(config.front.accounts):
            for password in KNOWN_FRONT_PASSWORDS:
                if verify_password(password, account.password_hash):
                    errors.append(
                        f"front.accounts[{i}].password_hash: the password {password!r} published"
                        f" in this repository; {advice}"
                    )
    return errors


Scope = Literal["send", "read", "campaigns", "admin"]
"""What a token may do on the HTTP API (see ``gateway.http.auth.ROUTE_SCOPES``): ``send``
messages, ``read`` them back, work with lists and ``campaigns``, all within its account;
``admin`` may do everything, on every account, including the gateway-wide routes (inbound
numbers, the MO log, lifting opt-outs)."""

SCOPES: tuple[Scope, ...] = ("send", "read", "campaigns", "admin")


def _scopes(value: tuple[str, ...]) -> str | None:
    if not value:
        return "give at least one scope, or leave scopes out (the token is then admin)"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenConfig:
    """``[[http.tokens]]``: one bearer token allowed on the HTTP API, stored hashed."""

    name: str = field(metadata=check(_name_check))
    sha256: str = field(
        repr=False,
        metadata=check(regex(r"[0-9a-f]{64}", "64 lower-case hex digits (a SHA-256 digest)")),
    )
    account: str = field(default="", metadata=check(_name_check))
    """The account whose messages, lists and campaigns the token works with; several tokens
    may share one (rotation, one per service). "" is the token's name, the account tokens
    had before accounts existed, so their messages stay theirs."""
    scopes: tuple[Scope, ...] | None = field(default=None, metadata=check(_scopes))
    """Left out: ``admin``, what every token could do before scopes existed (an existing
    configuration keeps working; ``smsgw`` logs a warning per such token when there are
    several)."""
    signing_secrets: tuple[str, ...] = field(
        default=(), repr=False, metadata=check(secrets_problem)
    )
    """Secrets that sign the status callbacks of the token's account (``X-Smsgw-Signature``,
    gateway.signing): the first signs, a second is the one being retired (each gives a
    ``v1``). Tokens of one account that set them set the same list. Empty: unsigned."""

    @property
    def effective_account(self) -> str:
        return self.account or self.name

    @property
    def effective_scopes(self) -> frozenset[Scope]:
        return frozenset(self.scopes) if self.scopes is not None else frozenset({"admin"})

    def matches(self, token: str) -> bool:
        """Whether ``token`` is this one; compares digests in constant time."""
        return hmac.compare_digest(hash_token(token), self.sha256)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    """``[http]``: the HTTP API."""

    host: str = field(default="127.0.0.1", metadata=check(non_empty))
    port: int = field(default=8775, metadata=check(in_range(0, MAX_PORT)))
    """0 picks a free port (tests)."""
    max_body_bytes: int = field(
        default=DEFAULT_HTTP_BODY, metadata=check(in_range(MIN_HTTP_BODY, None))
    )
    tokens: tuple[TokenConfig, ...] = field(
        metadata=check(lambda v: None if v else "at least one token is required")
    )
    header_timeout: float = field(default=10.0, metadata=check(in_range(0.1, 300)))
    """Seconds a client has to send a request's line and headers, from the connection's
    opening or the next request's first byte (slow clients: gateway.http.connguard)."""
    body_timeout: float = field(default=30.0, metadata=check(in_range(0.1, 3600)))
    """Seconds a request body may stop arriving before the connection is closed."""
    idle_timeout: float = field(default=30.0, metadata=check(in_range(0.1, 3600)))
    """Seconds a kept-alive connection may wait for its next request."""
    max_connections: int = field(default=4096, metadata=check(in_range(16, 1_000_000)))
    """Connections at once, in total; also held below the open-file limit less a reserve.
    At the cap a new connection replaces the one waiting longest for its request headers."""
    max_connections_per_client: int = field(default=256, metadata=check(in_range(1, 1_000_000)))
    """Connections at once from one client address (same rule at this cap)."""

    def validate(self) -> list[str]:
        errors = _unique(self.tokens, "name", "tokens") + _unique(self.tokens, "sha256", "tokens")
        first: dict[str, int] = {}
        for n, token in enumerate(self.tokens):
            if not token.signing_secrets:
                continue
            account = token.effective_account
            m = first.setdefault(account, n)
            if self.tokens[m].signing_secrets != token.signing_secrets:
                errors.append(
                    f"tokens[{n}].signing_secrets: differ from tokens[{m}].signing_secrets;"
                    f" the tokens of account {account!r} sign its callbacks with one list"
                )
        return errors

    def signing_secrets(self) -> dict[str, tuple[str, ...]]:
        """Each account's callback signing secrets (accounts that have some)."""
        found: dict[str, tuple[str, ...]] = {}
        for token in self.tokens:
            if token.signing_secrets:
                found.setdefault(token.effective_account, token.signing_secrets)
        return found

    def find_token(self, token: str) -> TokenConfig | None:
        """The configured token that ``token`` is, if any. Every entry is compared, so the
        time taken does not depend on which one matched."""
        digest = hash_token(token)
        found = None
        for entry in self.tokens:
            if hmac.compare_digest(digest, entry.sha256):
                found = entry
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """``[log]``."""

    level: LogLevel = "info"
    format: LogFormat = "text"
    """``text`` for people, ``json`` (one object per line) for collectors."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    """``[store]``: where messages and receipts are kept."""

    backend: Literal["sqlite"] = "sqlite"
    path: str = field(default="smsgw.db", metadata=check(non_empty))
    """Database file, relative to ``node.data_dir``."""
    synchronous: Literal["full", "normal"] = "full"
    """SQLite's fsync policy in WAL mode. ``full`` syncs the WAL on every (group) commit, so
    an accepted message survives a power cut; ``normal`` survives a crash of the process but
    may lose the last commits on power loss, for more throughput on slow disks."""
    min_free_mb: int = field(default=256, metadata=check(in_range(0, None)))
    """Free space (MiB) on the database's file system under which the store takes no new
    work (messages, MO, imports: 503 ``store_unavailable``) and begins no new submit
    attempts, keeping what is left for the outcomes and receipts of what is in flight; it
    takes work again by itself above this plus a quarter (at least 1 MiB). 0: never. The
    WAL alone can reach ~40 MB between checkpoints: keep this well above that."""
    health_check_interval: float = field(default=1.0, metadata=check(in_range(0.05, 60)))
    """Seconds between checks of the free space and of the database file's identity (a
    file deleted or replaced under the daemon is noticed within this)."""


DEFAULT_PRIORITY_FLAGS: Final = (0, 1, 2, 3, 3, 3, 3, 3, 3, 3)
"""priority_flag per message priority 0-9: the spec's 0-3 as they are, then 3."""

MESSAGE_PRIORITIES: Final = 10
"""Message priorities 0-9 (the HTTP API's ``priority``)."""


def _priority_flags(value: tuple[int, ...]) -> str | None:
    if len(value) != MESSAGE_PRIORITIES or any(not 0 <= v <= 3 for v in value):
        return (
            f"must list {MESSAGE_PRIORITIES} priority_flag values (one per message priority"
            f" 0-9), each 0..3, got {list(value)}"
        )
    return None


MAX_RETENTION_DAYS: Final = 36_600.0
"""A hundred years: any larger value is a typo (0 keeps forever)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionConfig:
    """``[retention]`` (optional): how long finished records are kept. Each age is in days
    (fractions allowed); 0 keeps that kind forever. Deleted in small batches in the
    background (gateway.store.retention), the space given back to the file system."""

    messages_days: float = field(default=30.0, metadata=check(in_range(0, MAX_RETENTION_DAYS)))
    """Messages in a final state (delivered, undeliverable, expired, rejected, failed)
    created longer ago than this, with their parts, receipts and history; also receipts that
    never matched a message, once this old."""
    idempotency_days: float = field(default=7.0, metadata=check(in_range(0, MAX_RETENTION_DAYS)))
    """Stored answers to ``Idempotency-Key`` requests: a retry with the same key after this
    is a new request."""
    interactions_days: float = field(default=90.0, metadata=check(in_range(0, MAX_RETENTION_DAYS)))
    """Handled MOs (interactions) and their survey answers."""
    campaigns_days: float = field(default=90.0, metadata=check(in_range(0, MAX_RETENTION_DAYS)))
    """Campaigns finished (done or cancelled) this long ago, with their audience and digest
    records; and finished list imports (their row-error reports). Lists, contacts and
    opt-outs are never deleted."""
    interval: float = field(default=60.0, metadata=check(in_range(0.1, 86400)))
    """Seconds between pruning rounds."""
    batch: int = field(default=500, metadata=check(in_range(1, 100_000)))
    """Records (messages, interactions...) deleted per transaction: small, so the writes
    of the traffic never wait long behind one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierConfig:
    """``[[carriers]]``: one SMSC account, bound ``binds`` times."""

    name: str = field(metadata=check(_name_check))
    host: str = field(metadata=check(non_empty))
    port: int = field(metadata=check(in_range(1, MAX_PORT)))
    system_id: str = field(metadata=check(all_of(non_empty, max_length(MAX_SYSTEM_ID))))
    password: str = field(repr=False, metadata=check(max_length(MAX_PASSWORD)))
    system_type: str = field(default="", metadata=check(max_length(MAX_SYSTEM_TYPE)))
    bind_type: BindTypeName = "trx"
    binds: int = field(default=1, metadata=check(in_range(1, None)))
    """Connections opened to this account. The spec sets no number; carriers cap binds per
    account in the contract."""
    window: int = field(default=10, metadata=check(in_range(1, MAX_WINDOW)))
    """Requests in flight per bind. The spec sets no number; carriers ask for 10-100."""
    tps: float = field(default=0.0, metadata=check(in_range(0, None)))
    """submit_sm per second per bind; 0 is unlimited. The number is the carrier's contract."""
    account_tps: float = field(default=0.0, metadata=check(in_range(0, None)))
    """submit_sm per second across this carrier's binds; 0 is unlimited (carrier contract)."""
    enquire_link_interval: float = field(default=30.0, metadata=check(_positive))
    """Seconds idle before an enquire_link; carriers ask for 20-60 s."""
    response_timeout: float = field(default=60.0, metadata=check(_positive))
    """Seconds to wait for any response (field default 60 s)."""
    bind_timeout: float = field(default=30.0, metadata=check(_positive))
    """Seconds to wait for bind_resp after connecting (field default 30 s)."""
    reconnect_initial: float = field(default=1.0, metadata=check(_positive))
    """Seconds before the first reconnect after a lost or refused bind; doubles per failure
    up to reconnect_max. 1 s rides out a restart of the SMSC without a busy loop."""
    reconnect_max: float = field(default=60.0, metadata=check(_positive))
    """Backoff cap in seconds: a minute bounds how long a recovered carrier waits for us,
    while a long outage costs it one login attempt a minute per bind."""
    reconnect_jitter: float = field(default=0.2, metadata=check(in_range(0, 1)))
    """Each delay is scaled by 1 +/- this share, so binds do not reconnect in lockstep."""
    message_id_form: IdForm = IdForm.AUTO
    """How the carrier writes message_id in submit_sm_resp. ``auto``: a receipt's id is
    tried as given, then read in the other base (hex <-> decimal), leading zeros ignored;
    the reading that matches is remembered per carrier and tried first from then on."""
    receipt_id_form: IdForm | None = None
    """How it writes the id in delivery receipts; unset means as ``message_id_form``."""
    receipt_timeout: float = field(default=72 * 3600.0, metadata=check(_positive))
    """Seconds a submitted message with no validity waits for its receipt; then it becomes
    ``expired`` with error ``no_receipt`` (an SMSC that lost it will never send one)."""
    receipt_grace: float = field(default=600.0, metadata=check(in_range(0, None)))
    """Seconds after a submitted message's validity ends before it is given up as
    ``expired`` (``no_receipt``): the SMSC's own EXPIRED receipt, or a receipt for a
    delivery just before the end, may take minutes to come."""
    addr_ton: int = field(default=0, metadata=check(_ton))
    """bind address_range's TON (5.2.5)."""
    addr_npi: int = field(default=0, metadata=check(_npi))
    """bind address_range's NPI (5.2.6)."""
    address_range: str = field(default="", metadata=check(max_length(MAX_ADDRESS_RANGE)))
    """bind address_range: which MO addresses this bind receives (5.2.7); empty is the
    SMSC's default."""
    source_ton: int | None = field(default=None, metadata=check(_ton))
    """submit_sm source_addr_ton; unset picks from the sender (alphanumeric, short code,
    international)."""
    source_npi: int | None = field(default=None, metadata=check(_npi))
    """submit_sm source_addr_npi; unset picks from the sender."""
    dest_ton: int = field(default=1, metadata=check(_ton))
    """submit_sm dest_addr_ton; 1 is international (E.164 numbers)."""
    dest_npi: int = field(default=1, metadata=check(_npi))
    """submit_sm dest_addr_npi; 1 is ISDN (E.164)."""
    gsm7_packed: bool = False
    """Send GSM 03.38 text packed 7 bits per character (few carriers want this over SMPP)."""
    latin1: bool = False
    """Send text that fits ISO-8859-1 as data_coding 3 instead of the GSM alphabet."""
    concat: Concat = "udh8"
    """Long messages: 8- or 16-bit reference UDH, SAR TLVs, or one message_payload."""
    registered_delivery: int = field(
        default=1, metadata=check(in_range(0, MAX_REGISTERED_DELIVERY))
    )
    """submit_sm registered_delivery (5.2.17); 1 asks for a receipt on final outcome."""
    interface_version: int = field(default=0x34, metadata=check(in_range(0, MAX_INTERFACE_VERSION)))
    """bind interface_version (5.2.4)."""
    send_validity: bool = True
    """Send the message's validity left at the time of the submit as submit_sm
    validity_period (relative form, spec 7.1.1), so the SMSC stops trying when we consider
    the message expired. Off: validity_period stays empty (the SMSC's default)."""
    priority_flag: tuple[int, ...] = field(
        default=DEFAULT_PRIORITY_FLAGS, metadata=check(_priority_flags)
    )
    """submit_sm priority_flag (5.2.14, 0-3) for each message priority 0-9, in order. The
    default keeps 0-3 as they are (an upstream ESME's priority_flag goes on unchanged) and
    sends 3 for anything higher; ten zeros send no priority at all."""
    tls: bool = False
    """Connect with TLS from the first byte (SMPP over TLS, as Kannel and Jasmin do; the
    carrier names the port, IANA registers 3550 for it)."""
    tls_ca_file: str = ""
    """PEM bundle of the CAs trusted for the SMSC's certificate; "" is the system store.
    Relative to the configuration file's directory."""
    tls_server_name: str = ""
    """The name the SMSC's certificate must carry, also sent as SNI; "" is ``host`` (an IP
    address is then checked against the certificate's IP addresses)."""
    tls_cert: str = ""
    """PEM client certificate chain, for carriers that ask for one (mutual TLS)."""
    tls_key: str = ""
    """The client certificate's private key (PEM, not encrypted); "" when it is in
    ``tls_cert``'s file."""
    tls_min_version: TlsVersion = "1.2"
    """Oldest TLS version accepted: ``1.2`` or ``1.3``."""
    tls_verify: bool = True
    """False accepts any certificate under any name: for a test SMSC only; every bind logs a
    warning (``bind.tls_unverified``) when it starts."""

    @property
    def tls_settings(self) -> TlsSettings | None:
        """What the binds need to speak TLS, or None for plain TCP."""
        if not self.tls:
            return None
        return TlsSettings(
            ca_file=self.tls_ca_file,
            server_name=self.tls_server_name,
            cert_file=self.tls_cert,
            key_file=self.tls_key,
            min_version=self.tls_min_version,
            verify=self.tls_verify,
        )

    @property
    def effective_receipt_id_form(self) -> IdForm:
        """The id form of receipts, ``message_id_form`` unless set on its own."""
        return self.receipt_id_form or self.message_id_form

    def validate(self) -> list[str]:
        errors: list[str] = []
        if self.reconnect_max < self.reconnect_initial:
            errors.append(
                f"reconnect_max: must be at least reconnect_initial ({self.reconnect_initial:g}),"
                f" got {self.reconnect_max:g}"
            )
        if not self.tls:
            # A TLS key without tls = true would leave the operator believing the link is
            # encrypted while it is not.
            errors.extend(
                f"{key}: set but tls is false (set tls = true to connect with TLS)"
                for key, default in _TLS_DEFAULTS.items()
                if getattr(self, key) != default
            )
        if self.tls_key and not self.tls_cert:
            errors.append("tls_key: set without tls_cert")
        return errors

    def tls_file_errors(self) -> list[str]:
        """Problems with the TLS files (missing, unreadable, not PEM, key not matching the
        certificate), each with its key; checked at load so a bad file stops the start."""
        settings = self.tls_settings
        if settings is None:
            return []
        try:
            settings.context()
        except TlsSetupError as exc:
            return [f"{exc.key}: {exc.message}"]
        return []

    def with_paths_from(self, base: str) -> CarrierConfig:
        """This carrier with its relative TLS file names taken against ``base``."""

        def under(name: str) -> str:
            return os.path.normpath(os.path.join(base, name)) if name else ""

        return dataclasses.replace(
            self,
            tls_ca_file=under(self.tls_ca_file),
            tls_cert=under(self.tls_cert),
            tls_key=under(self.tls_key),
        )


_TLS_DEFAULTS: dict[str, Any] = {
    "tls_ca_file": "",
    "tls_server_name": "",
    "tls_cert": "",
    "tls_key": "",
    "tls_min_version": "1.2",
    "tls_verify": True,
}
"""The carrier keys that mean something only with ``tls = true``, and their defaults."""


def _status_name(value: int | str) -> str | None:
    if isinstance(value, int):
        return None if 0 <= value <= 0xFFFFFFFF else f"must be a 32-bit status, got {value}"
    return None if value in _STATUS_NAMES else f"unknown command_status name {value!r}"


_STATUS_NAMES = frozenset({"timeout", "generic_nack"} | {"ESME_" + s.name for s in Status})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryRule:
    """``[[messages.retry]]``: what to do when a submit_sm gets this answer."""

    status: int | str = field(metadata=check(_status_name))
    """A command_status number, a name such as ``ESME_RTHROTTLED``, or ``timeout`` (no
    response in time) or ``generic_nack``."""
    attempts: int = field(default=5, metadata=check(in_range(1, 1000)))
    """Submit attempts in all before the message fails."""
    delay: float = field(default=5.0, metadata=check(in_range(0, 86400)))
    """Seconds before the next attempt; doubled after each further failure (capped at 1 h)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessagesConfig:
    """``[messages]``: intake and delivery policy. The section may be left out; every key
    has the default documented here."""

    default_region: str = field(default="", metadata=check(max_length(2)))
    """ISO country whose national numbers are accepted without ``+`` (e.g. ``FR``);
    "" accepts international numbers only."""
    number_check: Literal["valid", "possible"] = "valid"
    """Which phone numbers intake, imports and MO senders accept: ``valid`` (in a range
    phonenumbers' metadata lists; a newly opened range is refused until the library is
    upgraded) or ``possible`` (a known country code and a length that country uses)."""
    default_validity: float = field(default=48 * 3600.0, metadata=check(in_range(60, None)))
    """Seconds a message may wait to be sent when the client sets no ``validity``."""
    max_parts: int = field(default=10, metadata=check(in_range(1, 255)))
    """Longest text accepted, in parts (255 is the most a concatenation header counts)."""
    retry: tuple[RetryRule, ...] = ()
    """Rules that replace the built-in ones for the same status (see gateway.engine.retry)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteConfig:
    """``[[routes]]``: destinations starting with ``prefix`` go to ``carriers``."""

    prefix: str = field(default="", metadata=check(regex(r"\+?[0-9]*", "'+' and digits")))
    """E.164 prefix such as ``+33``; "" matches every number. The longest match wins."""
    carriers: tuple[str, ...] = field(
        metadata=check(lambda v: None if v else "at least one carrier is required")
    )
    weights: tuple[int, ...] = ()
    """Share of traffic per carrier, in the same order; () is equal shares. A carrier whose
    binds are all down is skipped (failover) until one is bound again."""

    def validate(self) -> list[str]:
        if self.weights and len(self.weights) != len(self.carriers):
            return [f"weights: {len(self.weights)} weights for {len(self.carriers)} carriers"]
        if any(w < 0 for w in self.weights) or (self.weights and not any(self.weights)):
            return ["weights: must be >= 0 and not all 0"]
        return []


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


def _quiet_hours(value: str) -> str | None:
    if not value:
        return None
    try:
        hours = parse_hours(value)
    except WindowError as exc:
        return str(exc)
    if hours.start == hours.end:
        return f"{value!r} allows the whole day: leave quiet_hours out instead"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ComplianceConfig:
    """``[compliance]`` (optional): rules every campaign keeps."""

    quiet_hours: str = field(default="", metadata=check(_quiet_hours))
    """``"08:00-21:00"``: the hours campaign messages may go out, in each recipient's local
    time (the quiet hours are the rest of the day). A campaign's send window is kept inside
    them: one in the recipients' local time that reaches outside is refused, any other is
    intersected with them. Replies to an MO (opt-out confirmations, HELP, keyword replies)
    and API messages are not held. "" (the default): no gateway-wide hours."""

    def hours(self) -> SendWindow | None:
        return parse_hours(self.quiet_hours) if self.quiet_hours else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownConfig:
    """``[shutdown]``: what SIGTERM does (see gateway.lifecycle). The section may be left
    out; every key has the default documented here."""

    drain_seconds: float = field(default=5.0, metadata=check(in_range(0, 600)))
    """After SIGTERM: seconds to wait for answers to submit_sm in flight, then seconds each
    bind keeps reading responses and receipts after its unbind. Stays well inside systemd's
    TimeoutStopSec (45 s in systemd/smsgw.service)."""
    retry_after_seconds: int = field(default=30, metadata=check(in_range(1, 3600)))
    """``Retry-After`` on the 503 that intake routes answer while the gateway drains."""
    pid_file: str = ""
    """When set, ``smsgw run`` writes its pid there (relative to ``node.data_dir``) for
    ``smsgw reload``; under systemd, ``systemctl reload smsgw`` needs none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """The whole configuration of one gateway process."""

    node: NodeConfig
    http: HttpConfig
    log: LogConfig
    store: StoreConfig
    carriers: tuple[CarrierConfig, ...] = field(
        metadata=check(lambda v: None if v else "at least one carrier is required")
    )
    messages: MessagesConfig = field(default_factory=MessagesConfig)
    routes: tuple[RouteConfig, ...] = ()
    """Optional: without routes, every destination goes to every carrier in equal shares."""
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    """Optional: SIGTERM drain policy."""
    front: FrontConfig | None = None
    """Optional ``[front]``: the SMPP server for upstream ESMEs (gateway.front)."""
    inbound: InboundConfig = field(default_factory=lambda: _default_inbound())
    """Optional: MO handling (see InboundConfig)."""
    digest: DigestConfig | None = None
    """Optional: the daily campaign digest by e-mail (see DigestConfig); none without it."""
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    """Optional: see CallbacksConfig for what holds when the section is left out."""
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    """Optional: how long finished records are kept (see RetentionConfig)."""
    links: LinksConfig | None = None
    """Optional ``[links]``: short links with click tracking in campaigns (gateway.links)."""
    compliance: ComplianceConfig = field(default_factory=ComplianceConfig)
    """Optional: see ComplianceConfig (no gateway-wide quiet hours without it)."""

    def validate(self) -> list[str]:
        errors = _unique(self.carriers, "name", "carriers")
        names = {c.name for c in self.carriers}
        for i, route in enumerate(self.routes):
            errors.extend(
                f"routes[{i}].carriers: unknown carrier {name!r}"
                for name in route.carriers
                if name not in names
            )
        errors.extend(self._webhooks_outside_the_allow_list())
        errors.extend(known_credentials(self))
        return errors

    def _webhooks_outside_the_allow_list(self) -> list[str]:
        """Webhook actions go through the callback outbox, so [callbacks] applies to them:
        say so at load rather than park every MO's webhook at run time."""
        from gateway.callback_policy import CallbackPolicy

        try:
            policy = CallbackPolicy.from_config(self.callbacks)
        except ValueError:
            return []  # a bad CIDR is reported on callbacks.allowed_networks
        errors = []
        for i, number in enumerate(self.inbound.numbers):
            for r, rule in enumerate(number.rules):
                for a, action in enumerate(rule.actions):
                    if action.type == "webhook" and action.url:
                        refusal = policy.url_refusal(action.url)
                        if refusal is not None:
                            errors.append(
                                f"inbound.numbers[{i}].rules[{r}].actions[{a}].url: {refusal}"
                                " ([callbacks] applies to webhooks)"
                            )
        return errors

    def signing_secrets(self) -> dict[str, tuple[str, ...]]:
        """Signer name (an account, or WEBHOOK_SIGNER for webhook actions) to its secrets."""
        found = self.http.signing_secrets()
        if self.inbound.webhook_signing_secrets:
            found[WEBHOOK_SIGNER] = self.inbound.webhook_signing_secrets
        return found

    @property
    def store_path(self) -> Path:
        """The database file: ``store.path`` against ``node.data_dir``."""
        return self.node.data_path / self.store.path

    def carrier(self, name: str) -> CarrierConfig:
        """The carrier called ``name``; KeyError when there is none."""
        for carrier in self.carriers:
            if carrier.name == name:
                return carrier
        raise KeyError(name)

    def resolve_paths(self, config_file: Path) -> GatewayConfig:
        """This configuration with ``node.data_dir`` made absolute against the directory of
        ``config_file``. An absolute data_dir is only normalised."""
        base = Path(os.path.abspath(config_file)).parent
        data_dir = os.path.normpath(base / self.node.data_dir)
        return dataclasses.replace(
            self,
            node=dataclasses.replace(self.node, data_dir=data_dir),
            carriers=tuple(c.with_paths_from(str(base)) for c in self.carriers),
        )

    def file_errors(self) -> list[str]:
        """Problems with the files the configuration names (the carriers' TLS files)."""
        return [
            f"carriers[{n}].{error}"
            for n, carrier in enumerate(self.carriers)
            for error in carrier.tls_file_errors()
        ]


def load_config(path: Path) -> GatewayConfig:
    """Read and check a gateway configuration file, with ``node.data_dir`` and the carriers'
    TLS files made absolute, and those files checked.

    Raises :class:`ConfigError` listing every problem found (``source`` is ``path``).
    """
    config = load_toml(GatewayConfig, path).resolve_paths(path)
    errors = config.file_errors()
    if errors:
        raise ConfigError(errors, path)
    return config


# -- inbound (MO) -------------------------------------------------------------------------
#
# [inbound] and its [[inbound.numbers]] are optional: without them every MO is still logged
# and the built-in opt-out / opt-in keywords still apply (silently: there is no number to
# take reply texts from). gateway.inbound describes what happens to an MO.

DAY = 86400.0

MAX_REASSEMBLY_TIMEOUT = 3600.0
"""SMSCs hand over the parts of one message within seconds; an hour bounds the memory an
unfinished message holds."""

MAX_FOLLOW_UP_DELAY = 7 * DAY
"""A follow-up send waits at most a week: the longest validity SMSCs commonly honour."""

MAX_HANDLER_TIMEOUT = 300.0
"""A Python handler that takes longer holds the sender's queue too long."""

MAX_CAMPAIGN_ID = 64
"""As the HTTP API's campaign_id."""

DEFAULT_OPT_OUT_REPLY = (
    "You are unsubscribed and will get no more messages from this number."
    " Reply START to subscribe again."
)
DEFAULT_OPT_OUT_ALL_REPLY = (
    "You are unsubscribed from all our messages. Reply START to subscribe again."
)
DEFAULT_OPT_IN_REPLY = "You are subscribed again. Reply STOP to unsubscribe."

InboundActionType = Literal[
    "reply", "send", "opt_out", "opt_in", "help", "tag", "answer", "webhook", "handler"
]

_ACTION_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # type: (required keys, allowed keys)
    "reply": (("text",), ("text",)),
    "send": (("text",), ("text", "delay")),
    "opt_out": ((), ("scope", "text")),
    "opt_in": ((), ("text",)),
    "help": ((), ()),
    "tag": (("tag",), ("tag",)),
    "answer": (("question",), ("question",)),
    "webhook": (("url",), ("url",)),
    "handler": (("handler",), ("handler",)),
}
_ACTION_DEFAULTS: dict[str, Any] = {
    "text": "",
    "delay": 0.0,
    "scope": "number",
    "tag": "",
    "question": "",
    "url": "",
    "handler": "",
}


def _one_word(value: str) -> str | None:
    from gateway.inbound.keywords import fold_word

    if not value or len(value.split()) != 1 or not fold_word(value):
        return f"must be one word, got {value!r}"
    return None


def _words(values: tuple[str, ...]) -> str | None:
    for value in values:
        problem = _one_word(value)
        if problem:
            return problem
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundActionConfig:
    """``[[inbound.numbers.rules.actions]]``: one step a rule takes, in order.

    - ``reply``: send ``text`` (a template: ``{first_name}`` and other contact fields) to the
      sender, from the number written to.
    - ``send``: a follow-up: ``text`` sent ``delay`` seconds later (scheduled).
    - ``opt_out``: stop messages to the sender from this number (``scope = "number"``) or
      from every sender (``"all"``), and confirm with ``text`` or the number's
      ``opt_out_reply``.
    - ``opt_in``: lift the sender's opt-out and confirm (``text`` or ``opt_in_reply``).
    - ``help``: reply with the number's ``help_text``.
    - ``tag``: add ``tag`` to the sender's contact (created when unknown).
    - ``answer``: record the MO as the answer to survey question ``question``.
    - ``webhook``: POST the MO as JSON to ``url``, through the callback outbox (retried).
    - ``handler``: await ``handler`` (``package.module:function``), imported at load.
    """

    type: InboundActionType
    text: str = ""
    delay: float = field(default=0.0, metadata=check(in_range(0, MAX_FOLLOW_UP_DELAY)))
    scope: Literal["number", "all"] = "number"
    tag: str = field(default="", metadata=check(max_length(64)))
    question: str = field(default="", metadata=check(max_length(64)))
    url: str = ""
    handler: str = ""

    def validate(self) -> list[str]:
        required, allowed = _ACTION_KEYS[self.type]
        errors: list[str] = []
        for key in required:
            if getattr(self, key) == _ACTION_DEFAULTS[key]:
                errors.append(f"{key}: required for a {self.type!r} action")
        for key, default in _ACTION_DEFAULTS.items():
            if key not in allowed and getattr(self, key) != default:
                errors.append(f"{key}: not used by a {self.type!r} action")
        if errors:
            return errors
        if self.type == "webhook":
            from gateway.core.validation import Invalid, callback_url

            try:
                callback_url(self.url)
            except Invalid as exc:
                errors.append(f"url: {exc}")
        if self.type == "handler":
            from gateway.inbound.handlers import HandlerError, resolve_handler

            try:
                resolve_handler(self.handler)
            except HandlerError as exc:
                errors.append(f"handler: {exc}")
        return errors


@dataclass(frozen=True, slots=True, kw_only=True)
class KeywordRuleConfig:
    """``[[inbound.numbers.rules]]``: MOs starting with ``keyword`` (or an alias), or
    matching one of ``patterns``, run ``actions`` in order.

    Matching ignores case and accents. ``patterns`` are regular expressions searched in the
    MO text folded to lower case without accents, run on RE2 (linear time whatever the
    pattern; no backreferences or lookaround: see gateway.inbound.keywords).
    ``campaign_id`` ties the rule to a campaign: an MO matching it is logged under that
    campaign (a campaign keyword wins over the correlation by last message sent)."""

    name: str = field(metadata=check(_name_check))
    """Logged with each MO the rule matched."""
    keyword: str = field(default="", metadata=check(max_length(32)))
    aliases: tuple[str, ...] = field(default=(), metadata=check(_words))
    patterns: tuple[str, ...] = ()
    campaign_id: str | None = field(
        default=None, metadata=check(all_of(non_empty, max_length(MAX_CAMPAIGN_ID)))
    )
    actions: tuple[InboundActionConfig, ...] = field(
        metadata=check(lambda v: None if v else "at least one action is required")
    )

    def validate(self) -> list[str]:
        from gateway.inbound.keywords import PatternError, compile_pattern

        errors: list[str] = []
        if self.keyword:
            problem = _one_word(self.keyword)
            if problem:
                errors.append(f"keyword: {problem}")
        elif not self.patterns:
            errors.append("keyword: a keyword or at least one pattern is required")
        if self.aliases and not self.keyword:
            errors.append("aliases: need a keyword (aliases are other words for it)")
        for n, pattern in enumerate(self.patterns):
            try:
                compile_pattern(pattern)
            except PatternError as exc:
                errors.append(f"patterns[{n}]: {exc}")
        return errors


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundNumberConfig:
    """``[[inbound.numbers]]``: a short code or long number of ours that receives MOs."""

    number: str = field(
        metadata=check(
            regex(r"\+?[0-9]{3,15}", "a short code or a number in international format (+digits)")
        )
    )
    """As senders write it at the HTTP API (``from``): replies go from it, and opt-outs are
    kept against it."""
    aliases: tuple[str, ...] = field(
        default=(), metadata=check(lambda v: _words(v) or _all_digits(v))
    )
    """Other ways carriers write this number in deliver_sm (a national form, say)."""
    help_text: str = ""
    """Reply to HELP / INFO (and the ``help`` action); "" leaves those words to the rules."""
    courtesy_reply: str = ""
    """Reply to an MO that matches no rule, at most once per ``courtesy_interval`` per
    sender; "" sends none."""
    opt_out_reply: str = DEFAULT_OPT_OUT_REPLY
    """Confirmation of STOP; sent although the sender is now opted out (see gateway.inbound).
    "" sends none."""
    opt_out_all_reply: str = DEFAULT_OPT_OUT_ALL_REPLY
    """Confirmation of STOPALL / STOP ALL."""
    opt_in_reply: str = DEFAULT_OPT_IN_REPLY
    """Confirmation of START (and of YES from an opted-out sender)."""
    opt_out_keywords: tuple[str, ...] = field(default=(), metadata=check(_words))
    """Opt-out words of this number beyond STOP, UNSUBSCRIBE, CANCEL, END, QUIT."""
    opt_in_keywords: tuple[str, ...] = field(default=(), metadata=check(_words))
    help_keywords: tuple[str, ...] = field(default=(), metadata=check(_words))
    rules: tuple[KeywordRuleConfig, ...] = ()

    def validate(self) -> list[str]:
        return _unique(self.rules, "name", "rules")


def _all_digits(values: tuple[str, ...]) -> str | None:
    for value in values:
        if not value.lstrip("+").isdigit():
            return f"must be digits (a leading + allowed), got {value!r}"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundConfig:
    """``[inbound]``: mobile-originated messages. The section may be left out; every key has
    the default documented here."""

    reassembly_timeout: float = field(
        default=60.0, metadata=check(in_range(1, MAX_REASSEMBLY_TIMEOUT))
    )
    """Seconds after the first part of a long MO at which the parts received so far are
    taken as the message (logged as incomplete)."""
    reply_window: float = field(default=10 * DAY, metadata=check(in_range(0, 366 * DAY)))
    """Seconds after an MT during which an MO from its recipient to its sender belongs to
    the MT's campaign (10 days)."""
    courtesy_interval: float = field(default=DAY, metadata=check(in_range(60, 366 * DAY)))
    """At most one courtesy reply per sender per number in this many seconds (24 h), so
    two automated systems cannot keep answering each other."""
    loop_repeats: int = field(default=3, metadata=check(in_range(2, 1000)))
    """A sender that sent the same text this many times within ``loop_window`` looks like
    a machine: it gets no automatic reply (its actions still run)."""
    loop_window: float = field(default=3600.0, metadata=check(in_range(60, 7 * DAY)))
    handler_timeout: float = field(
        default=10.0, metadata=check(all_of(_positive, in_range(None, MAX_HANDLER_TIMEOUT)))
    )
    """Seconds a Python handler may take; it is cancelled after that."""
    max_attempts: int = field(default=3, metadata=check(in_range(1, 100)))
    """Handlings of one MO that may fail or not finish (a crash or hang during it counts)
    before it is quarantined: set aside with its reason, never handled again unless
    requeued (``POST /v1/interactions/{id}/retry``)."""
    opt_out_keywords: tuple[str, ...] = field(default=(), metadata=check(_words))
    """Opt-out words for every number, e.g. ["ARRET", "STOPP", "BAJA"]."""
    opt_in_keywords: tuple[str, ...] = field(default=(), metadata=check(_words))
    """Opt-in words for every number beyond START, e.g. ["ARRETER"]."""
    help_keywords: tuple[str, ...] = field(default=(), metadata=check(_words))
    """HELP words for every number beyond HELP and INFO, e.g. ["AIDE"]."""
    numbers: tuple[InboundNumberConfig, ...] = ()
    webhook_signing_secrets: tuple[str, ...] = field(
        default=(), repr=False, metadata=check(secrets_problem)
    )
    """Secrets that sign every ``webhook`` action's POST (``X-Smsgw-Signature``,
    gateway.signing), as ``[[http.tokens]] signing_secrets`` do for status callbacks:
    the first signs, a second is the one being retired. Empty: unsigned."""

    def validate(self) -> list[str]:
        from gateway.inbound.keywords import (
            HELP_WORDS,
            OPT_IN_WORDS,
            OPT_OUT_ALL_WORDS,
            OPT_OUT_WORDS,
            fold_word,
        )

        errors: list[str] = []
        seen: dict[str, str] = {}
        for i, number in enumerate(self.numbers):
            for n, form in enumerate((number.number, *number.aliases)):
                digits = form.lstrip("+")
                where = f"numbers[{i}].number" if n == 0 else f"numbers[{i}].aliases[{n - 1}]"
                if digits in seen:
                    errors.append(f"{where}: {form!r} is already {seen[digits]}")
                seen.setdefault(digits, where)
            system = {
                fold_word(w)
                for w in (
                    *OPT_OUT_WORDS,
                    *OPT_OUT_ALL_WORDS,
                    *OPT_IN_WORDS,
                    *self.opt_out_keywords,
                    *self.opt_in_keywords,
                    *number.opt_out_keywords,
                    *number.opt_in_keywords,
                )
            }
            if number.help_text:
                system |= {
                    fold_word(w) for w in (*HELP_WORDS, *self.help_keywords, *number.help_keywords)
                }
            taken: dict[tuple[str, str | None], str] = {}
            for r, rule in enumerate(number.rules):
                words = [rule.keyword, *rule.aliases] if rule.keyword else []
                for w, word in enumerate(words):
                    where = f"numbers[{i}].rules[{r}]." + (
                        "keyword" if w == 0 else f"aliases[{w - 1}]"
                    )
                    folded = fold_word(word)
                    if folded in system:
                        errors.append(
                            f"{where}: {word!r} is a built-in opt-out, opt-in or HELP word"
                            " of this number; a rule cannot take it"
                        )
                    scope = (folded, rule.campaign_id)
                    if scope in taken:
                        errors.append(f"{where}: {word!r} is already taken by {taken[scope]}")
                    taken.setdefault(scope, f"rule {rule.name!r}")
        return errors


def _default_inbound() -> InboundConfig:
    return InboundConfig()


# -- daily digest (e-mail) ----------------------------------------------------------------
#
# [digest] is optional: without it no digest is sent. With it, [digest.smtp] names the mail
# server. gateway.reports.digest describes what is sent and when.

SMTP_PORTS = {"starttls": 587, "tls": 465, "none": 25}
"""The usual port of each SMTP security mode: submission (RFC 6409), submissions (RFC 8314),
plain SMTP."""

MAX_DIGEST_DAYS = 366

_EMAIL = r"[^@\s<>(),;:\\\"\[\]]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
"""A plain address ``local@domain.tld``: what a digest may be sent from or to."""


def _clock_time(value: str) -> str | None:
    try:
        datetime.time.fromisoformat(value)
    except ValueError:
        return f"must be a time of day as HH:MM, got {value!r}"
    return None if len(value) == 5 else f"must be a time of day as HH:MM, got {value!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpConfig:
    """``[digest.smtp]``: the mail server digests go through (aiosmtplib)."""

    host: str = field(metadata=check(non_empty))
    port: int | None = field(default=None, metadata=check(in_range(1, MAX_PORT)))
    """Default by ``security``: 587 (starttls), 465 (tls), 25 (none)."""
    security: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls``: plain connection upgraded with STARTTLS (required, not opportunistic);
    ``tls``: TLS from the first byte; ``none``: no encryption (a relay on localhost)."""
    user: str = ""
    """Log in as this user when set."""
    password: str = field(default="", repr=False)
    """Never logged, never shown in repr()."""
    timeout: float = field(default=30.0, metadata=check(in_range(1, 600)))
    """Seconds for each SMTP step."""

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else SMTP_PORTS[self.security]

    def validate(self) -> list[str]:
        if self.password and not self.user:
            return ["password: set without a user"]
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestConfig:
    """``[digest]``: each day at ``time`` (in ``time_zone``), for the first ``days`` days of a
    campaign (a campaign may ask for another number), an e-mail with that day's counts and
    interactions (CSV attached) to the campaign's digest addresses (at most 5)."""

    smtp: SmtpConfig
    from_address: str = field(metadata=check(regex(_EMAIL, "an e-mail address")))
    """The From: of digests."""
    time: str = field(default="18:00", metadata=check(_clock_time))
    """Local time of day the digest goes out, HH:MM."""
    time_zone: str = field(default="", metadata=check(lambda v: _time_zone(v) if v else None))
    """IANA time zone of ``time`` and of the day boundaries; "" is ``node.time_zone``."""
    days: int = field(default=10, metadata=check(in_range(1, MAX_DIGEST_DAYS)))
    """Digests per campaign, from its start, when the campaign does not say."""
    check_interval: float = field(default=60.0, metadata=check(in_range(1, 3600)))
    """Seconds between looks for a digest due: a digest leaves at most this late."""
    retry_interval: float = field(default=300.0, metadata=check(in_range(1, 86400)))
    """Seconds before a digest that failed (SMTP down) is tried again."""

    @property
    def clock_time(self) -> datetime.time:
        return datetime.time.fromisoformat(self.time)

    def tzinfo(self, node: NodeConfig) -> datetime.tzinfo:
        """The zone of ``time``: ``time_zone``, or the node's."""
        name = self.time_zone or node.time_zone
        return datetime.UTC if name == "UTC" else zoneinfo.ZoneInfo(name)
