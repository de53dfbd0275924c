"""Upstream account passwords: their stored form (``hash_password``, ``verify_password``),
and the command that prints one for ``[[front.accounts]]``:

python -m gateway.front.passwords            # asks for the password
python -m gateway.front.passwords PASSWORD   # from the command line (visible to ps)
python -m gateway.front.passwords -- -PASS   # a password starting with '-'
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import os
import sys
from typing import Final

PBKDF2_ITERATIONS: Final = 100_000
"""About 30-60 ms per bind on one core: nothing for a bind, slow for a password search."""

HASH_PATTERN: Final = r"pbkdf2_sha256\$[0-9]+\$[0-9a-f]{16,}\$[0-9a-f]{64}"
"""The stored form ``hash_password`` writes (``[[front.accounts]] password_hash``)."""


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The stored form of an upstream account's password."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (compared in constant time)."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac(
            "sha256", password.encode("utf-8"), bytes.fromhex(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


MAX_PASSWORD: int = 8
"""SMPP 3.4 password field: 9 octets with the NUL."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.front.passwords",
        description="Print the salted PBKDF2-SHA256 hash of an upstream ESME's SMPP password,"
        " for password_hash in [[front.accounts]].",
        epilog="A password starting with '-' goes after '--'.",
    )
    parser.add_argument(
        "password",
        nargs="?",
        help="the password (visible to ps); left out, it is asked for without echo",
    )
    return parser


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): argparse printed it
        return exc.code if isinstance(exc.code, int) else 2
    password = args.password if args.password is not None else getpass.getpass("password: ")
    if len(password) > MAX_PASSWORD:
        print(f"SMPP 3.4 passwords hold at most {MAX_PASSWORD} characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
