"""SMPP addresses (TON, NPI, digits) and smsgw's numbers: the one rule for both directions.

Pure code. The SMSC side of smsgw (the front, which reads an ESME's submit_sm and writes
receipts and MO to it) and the bundled simulator (which writes MO) use these functions, so
a short code reads and writes the same way everywhere, and the same way as the HTTP API
treats ``"from": "12345"`` (gateway.core.validation: 3 to 8 digits is a short code).

Reading (``as_number``): a '+' number or an alphanumeric sender (TON 5) passes unchanged; a
digit string of 3 to 8 digits with TON 0 (unknown), 3 (network specific) or 6
(abbreviated) is a short code and passes unchanged; other digits with TON 1
(international), or with TON 0 and no national prefix '0', get a '+'; anything else passes
unchanged (left to intake, which knows the region).

Writing (``smpp_address``): '+digits' as TON 1 NPI 1 without the '+'; a short code as
TON 0 NPI 1 (how short codes commonly come from SMSCs, and what reads back as a short
code); other digits as TON 1 NPI 1; anything else as alphanumeric, TON 5 NPI 0.
"""

from __future__ import annotations

from typing import Final

TON_UNKNOWN: Final = 0
TON_INTERNATIONAL: Final = 1
TON_NETWORK_SPECIFIC: Final = 3
TON_ALPHANUMERIC: Final = 5
TON_ABBREVIATED: Final = 6
NPI_UNKNOWN: Final = 0
NPI_ISDN: Final = 1

SHORT_CODE_DIGITS: Final = (3, 8)
"""Short codes run 3 to 8 digits (the HTTP API's rule, gateway.core.validation); longer
digit strings are numbers."""

SHORT_CODE_TONS: Final = frozenset({TON_UNKNOWN, TON_NETWORK_SPECIFIC, TON_ABBREVIATED})
"""TONs a short code comes with in the field: unknown (the most common), network specific
and abbreviated."""


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def is_short_code(address: str) -> bool:
    """3 to 8 digits, no '+'."""
    low, high = SHORT_CODE_DIGITS
    return _digits(address) and low <= len(address) <= high


def as_number(address: str, ton: int) -> str:
    """An SMPP address (with its TON) as smsgw writes numbers and senders (see the module
    docstring): '+digits' for a number, the digits of a short code, other senders as they
    are."""
    if address.startswith("+") or ton == TON_ALPHANUMERIC:
        return address
    if ton in SHORT_CODE_TONS and is_short_code(address):
        return address
    if _digits(address) and ton in (TON_UNKNOWN, TON_INTERNATIONAL) and address[:1] != "0":
        return "+" + address
    return address


def smpp_address(value: str) -> tuple[int, int, str]:
    """(ton, npi, address) of a number, short code or sender as smsgw keeps it."""
    if value.startswith("+") and len(value) > 1 and _digits(value[1:]):
        return TON_INTERNATIONAL, NPI_ISDN, value[1:]
    if is_short_code(value):
        return TON_UNKNOWN, NPI_ISDN, value
    if _digits(value):
        return TON_INTERNATIONAL, NPI_ISDN, value
    return TON_ALPHANUMERIC, NPI_UNKNOWN, value
