"""Print the stored form of an upstream account's password for ``[[front.accounts]]``.

python -m gateway.front.passwords            # asks for the password
python -m gateway.front.passwords PASSWORD   # from the command line (visible to ps)
"""

from __future__ import annotations

import getpass
import sys

from gateway.front.config import hash_password


def main(argv: list[str]) -> int:
    password = argv[0] if argv else getpass.getpass("password: ")
    if len(password) > 8:
        print("SMPP 3.4 passwords hold at most 8 characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
