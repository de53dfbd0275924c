"""``[[carriers]]``: the SMSC accounts the gateway binds to."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from gateway.binds import TlsSettings, TlsSetupError, TlsVersion
from gateway.config.common import MAX_PORT, _name_check, _positive
from gateway.config.loader import all_of, check, in_range, max_length, non_empty
from gateway.smpp.receipt import IdForm

BindTypeName = Literal["tx", "rx", "trx"]

Concat = Literal["udh8", "udh16", "sar", "payload"]

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


def _ton(value: int) -> str | None:
    if value in TON_VALUES:
        return None
    return f"must be a type_of_number of SMPP 3.4 5.2.5 (0..6), got {value}"


def _npi(value: int) -> str | None:
    if value in NPI_VALUES:
        return None
    shown = ", ".join(str(v) for v in NPI_VALUES)
    return f"must be a numbering_plan_indicator of SMPP 3.4 5.2.6 ({shown}), got {value}"


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
