"""The simulator's configuration: one frozen dataclass tree, loaded and checked once.

``load_config(path)`` reads TOML through ``gateway.config.loader``: types, ranges, choices,
unknown and missing keys, and the rules that span fields (``validate``) are all checked,
and every problem is reported together, each with its key path, in one ``ConfigError``;
the simulator then refuses to start.

Required sections: ``[smpp]``, ``[control]``, ``[log]`` and at least one ``[[accounts]]``.
``[messages]`` and ``[subscribers]`` may be left out: the ring buffer then keeps the last
1000 messages and no subscriber replies (both are stated here, not filled in silently).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from gateway.config.loader import check, in_range, load_toml, max_length, non_empty

BindTypeName = Literal["tx", "rx", "trx"]
BIND_TYPES: tuple[BindTypeName, ...] = ("tx", "rx", "trx")

_PORT = check(in_range(0, 65535))
_NON_NEGATIVE = check(in_range(0))
_PROBABILITY = check(in_range(0, 1))
_SECONDS = check(in_range(0.001, 86_400))
_DELAY_SECONDS = check(in_range(0, 86_400))
_SYSTEM_ID = check(lambda v: non_empty(v) or max_length(15)(v))
"""system_id: a C-octet string of at most 16 octets with its NUL (SMPP 3.4 5.2.1)."""
_PASSWORD = check(max_length(8))
"""password: at most 9 octets with its NUL (SMPP 3.4 5.2.2)."""


TLS_PORT = 3550
"""IANA's port for SMPP over TLS ("ssmpp")."""


@dataclass(frozen=True, slots=True)
class TlsListenerConfig:
    """``[smpp.tls]``: a second SMPP listener, on ``smpp.host``, speaking TLS only."""

    cert: str = field(metadata=check(non_empty))
    """PEM certificate chain the simulator presents."""
    key: str = field(metadata=check(non_empty))
    """Its private key (PEM)."""
    port: int = field(default=TLS_PORT, metadata=_PORT)
    client_ca: str = ""
    """PEM CA bundle: when set, ESMEs must present a client certificate signed by one of
    these CAs (mutual TLS); "" asks for none."""

    def with_paths_from(self, base: Path) -> TlsListenerConfig:
        def under(name: str) -> str:
            return str(base / name) if name else ""

        return replace(
            self, cert=under(self.cert), key=under(self.key), client_ca=under(self.client_ca)
        )


@dataclass(frozen=True, slots=True)
class SmppConfig:
    host: str = "127.0.0.1"
    port: int = field(default=2775, metadata=_PORT)
    system_id: str = field(default="smsc-sim", metadata=_SYSTEM_ID)
    """What bind_resp carries as the SMSC's system_id."""
    enquire_link_interval: float = field(default=30.0, metadata=_SECONDS)
    """Probe an idle ESME after this many seconds (field default 30 s)."""
    response_timeout: float = field(default=30.0, metadata=_SECONDS)
    """How long a deliver_sm waits for its deliver_sm_resp before it is queued again."""
    bind_timeout: float = field(default=30.0, metadata=_SECONDS)
    """Close a connection that has not bound within this many seconds."""
    tls: TlsListenerConfig | None = None
    """``[smpp.tls]``: also listen with TLS; left out, plain TCP only."""
    tcp_quickack: bool = False
    """Acknowledge every read at once (Linux ``TCP_QUICKACK``, set again after each read:
    the kernel clears it by itself). Off, the kernel's delayed ACKs apply, as in most SMSC
    stacks; on, the simulator behaves like a sink that ACKs at once, which shows whether an
    ESME's throughput depends on the peer's ACK timing (Nagle against delayed ACK)."""


@dataclass(frozen=True, slots=True)
class ControlConfig:
    host: str = "127.0.0.1"
    port: int = field(default=8776, metadata=_PORT)
    max_body_bytes: int = field(default=1_048_576, metadata=check(in_range(1024)))


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True, slots=True)
class MessagesConfig:
    keep: int = field(default=1000, metadata=check(in_range(0, 10_000_000)))
    """How many received messages ``GET /v1/messages`` can return (a ring buffer)."""


@dataclass(frozen=True, slots=True)
class DelayConfig:
    """``fixed``: always ``seconds``; ``uniform``: anywhere between ``min`` and ``max``."""

    distribution: Literal["fixed", "uniform"] = "fixed"
    seconds: float = field(default=0.0, metadata=_DELAY_SECONDS)
    min: float = field(default=0.0, metadata=_DELAY_SECONDS)
    max: float = field(default=0.0, metadata=_DELAY_SECONDS)

    def validate(self) -> list[str]:
        if self.distribution == "uniform" and self.min > self.max:
            return [f"min: {self.min:g} must not exceed max ({self.max:g})"]
        return []


@dataclass(frozen=True, slots=True)
class MessageIdConfig:
    base: Literal["hex", "decimal"] = "hex"
    uppercase: bool = False
    width: int = field(default=0, metadata=check(in_range(0, 64)))
    """Zero-pad to this many digits; 0 pads nothing."""


@dataclass(frozen=True, slots=True)
class OutcomesConfig:
    """Relative weights of the final states receipts report."""

    delivered: float = field(default=1.0, metadata=_NON_NEGATIVE)
    undeliverable: float = field(default=0.0, metadata=_NON_NEGATIVE)
    expired: float = field(default=0.0, metadata=_NON_NEGATIVE)
    rejected: float = field(default=0.0, metadata=_NON_NEGATIVE)

    def validate(self) -> list[str]:
        if self.delivered + self.undeliverable + self.expired + self.rejected <= 0:
            return ["delivered: at least one outcome weight must be above 0"]
        return []


@dataclass(frozen=True, slots=True)
class ReceiptsConfig:
    text: bool = True
    """Write the Appendix B text form in short_message."""
    tlvs: bool = True
    """Add receipted_message_id, message_state and network_error_code TLVs."""
    id_in_other_base: bool = False
    """Write the id in the receipt in decimal when submit_sm_resp uses hex, and vice versa."""
    date_seconds: bool = False
    """12-digit dates (yyMMddHHmmss) instead of Appendix B's 10 digits."""
    delay: DelayConfig = field(default_factory=DelayConfig)
    outcomes: OutcomesConfig = field(default_factory=OutcomesConfig)

    def validate(self) -> list[str]:
        if not (self.text or self.tlvs):
            return ["tlvs: text and tlvs cannot both be false"]
        return []


@dataclass(frozen=True, slots=True)
class AccountConfig:
    system_id: str = field(metadata=_SYSTEM_ID)
    password: str = field(metadata=_PASSWORD)
    bind_types: tuple[BindTypeName, ...] = field(default=BIND_TYPES, metadata=check(non_empty))
    max_binds: int = field(default=4, metadata=check(in_range(1)))
    tps: float = field(default=0.0, metadata=_NON_NEGATIVE)
    """submit_sm per second across the account's binds; 0 is no limit (ESME_RTHROTTLED)."""
    tps_burst: float = field(default=0.0, metadata=_NON_NEGATIVE)
    """Bucket size in messages; 0 picks a tenth of a second's worth (at least 1)."""
    window: int = field(default=0, metadata=_NON_NEGATIVE)
    """submit_sm per bind not yet answered; 0 is no limit (ESME_RMSGQFUL)."""
    deliver_window: int = field(default=10, metadata=check(in_range(1)))
    """deliver_sm (receipts, MO) in flight per bind towards the ESME."""
    held_max: int = field(default=100_000, metadata=_NON_NEGATIVE)
    """Receipts and MO held while no receiver is bound (or all windows are full)."""
    deliver_retry_delay: float = field(default=1.0, metadata=_NON_NEGATIVE)
    """Seconds before a deliver_sm refused with a temporary error (ESME_RX_T_APPN,
    ESME_RSYSERR, ESME_RTHROTTLED, ESME_RMSGQFUL) is offered again, as SMSCs do; any other
    status ends it."""
    message_id: MessageIdConfig = field(default_factory=MessageIdConfig)
    receipts: ReceiptsConfig = field(default_factory=ReceiptsConfig)


@dataclass(frozen=True, slots=True)
class ReplyConfig:
    text: str = field(metadata=check(non_empty))
    weight: float = field(default=1.0, metadata=_NON_NEGATIVE)


@dataclass(frozen=True, slots=True)
class SubscribersConfig:
    reply_share: float = field(default=0.0, metadata=_PROBABILITY)
    """Share of destination numbers that reply; which ones follows a hash of the number."""
    reply_once: Literal["message", "number"] = "message"
    """``message``: a replying number answers every MT; ``number``: only its first one."""
    delay: DelayConfig = field(default_factory=lambda: DelayConfig(seconds=1.0))
    replies: tuple[ReplyConfig, ...] = ()

    def validate(self) -> list[str]:
        if self.reply_share > 0 and not self.replies:
            return ["replies: reply_share is above 0 but no replies are listed"]
        if self.replies and sum(r.weight for r in self.replies) <= 0:
            return ["replies: at least one weight must be above 0"]
        return []


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    smpp: SmppConfig
    control: ControlConfig
    log: LogConfig
    accounts: tuple[AccountConfig, ...]
    messages: MessagesConfig = field(default_factory=MessagesConfig)
    subscribers: SubscribersConfig = field(default_factory=SubscribersConfig)
    seed: int | None = None
    """Seed of the random choices (outcomes, delays, faults); unset is random."""

    def validate(self) -> list[str]:
        errors = []
        if not self.accounts:
            errors.append("accounts: at least one account is needed")
        seen: dict[str, int] = {}
        for n, account in enumerate(self.accounts):
            if account.system_id in seen:
                errors.append(
                    f"accounts[{n}].system_id: {account.system_id!r} is already "
                    f"accounts[{seen[account.system_id]}]"
                )
            seen.setdefault(account.system_id, n)
        return errors


def load_config(path: str | Path) -> SimulatorConfig:
    """Read and check a TOML file; raises ConfigError listing every problem. Relative TLS
    file names are taken against the file's directory."""
    config = load_toml(SimulatorConfig, Path(path))
    if config.smpp.tls is None:
        return config
    base = Path(path).resolve().parent
    return replace(config, smpp=replace(config.smpp, tls=config.smpp.tls.with_paths_from(base)))
