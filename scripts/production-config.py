#!/usr/bin/env python3
"""Write a production gateway configuration from the development one (conf/gateway.toml).

    production-config.py conf/gateway.toml /etc/smsgw/gateway.toml [--data-dir /var/lib/smsgw]

What changes, line by line, so every comment of the template stays:
  - ``[node] development`` becomes false: the daemon then refuses any credential published in
    the repository;
  - ``node.data_dir`` is the given directory;
  - the HTTP token is a fresh random one, stored as its SHA-256; its clear text is printed
    once, here, and nowhere else;
  - the simulator carrier is commented out and the development front account (``crm``)
    left out: add the carrier accounts you were given (``smsgw check-config`` says what is
    missing).

An existing output file is never overwritten (exit 3): a configuration in use stays as it is.
Needs only the Python standard library.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import secrets
import sys
from pathlib import Path

TOKEN_NAME = "admin"

CARRIER_NOTE = """\
# Your carriers go here: one [[carriers]] entry per SMSC account, with the keys shown in the
# commented example below (the development simulator, which a production gateway has no use
# for). The gateway refuses to start until there is at least one.
"""

FRONT_ACCOUNTS = """\
# No upstream account yet (the development one is not copied). Add one [[front.accounts]]
# per upstream system; every key is in README.md, "Upstream ESMEs". For example:
# [[front.accounts]]
# system_id = "crm"
# password_hash = "pbkdf2_sha256$..."   # python -m gateway.front.passwords
# allowed_ips = ["10.1.2.0/24"]         # networks (CIDR) binds may come from
"""


def blocks(lines: list[str], header: str, note: str, keep: bool) -> list[str]:
    """Every block that starts with the table ``header`` (up to the first blank line)
    commented out (``keep``) or left out, with ``note`` before the first one."""
    out: list[str] = []
    inside = False
    noted = False
    for line in lines:
        if line.strip() == header:
            inside = True
            if not noted:
                out.append(note)
                noted = True
        elif inside and not line.strip():
            inside = False
        if not inside:
            out.append(line)
        elif keep:
            out.append(f"# {line}")
    return out


def production(template: str, data_dir: str, token_hash: str) -> str:
    text = template
    name = f'name = "{TOKEN_NAME}"'
    text, n = re.subn(
        r"(?m)^development = true\b.*$",
        "development = false             # never true here: the repository's credentials"
        " would be accepted",
        text,
    )
    if n != 1:
        raise SystemExit("template: no `development = true` line in [node]")
    text, n = re.subn(r"(?m)^data_dir = .*$", f'data_dir = "{data_dir}"', text)
    if n != 1:
        raise SystemExit("template: no data_dir line")
    text, n = re.subn(
        r'(?m)^(\[\[http\.tokens\]\]\n)name = "[^"]*"(.*)\nsha256 = "[0-9a-f]{64}"',
        lambda m: f'{m.group(1)}{name:<32}{m.group(2).lstrip()}\nsha256 = "{token_hash}"',
        text,
    )
    if n != 1:
        raise SystemExit("template: expected one [[http.tokens]] entry")
    text = re.sub(
        r"(?m)^# Development token, in clear: .*$",
        "# The token written at installation; its clear text was printed once.",
        text,
    )
    lines = text.splitlines(keepends=True)
    lines = blocks(lines, "[[carriers]]", CARRIER_NOTE, keep=True)
    lines = blocks(lines, "[[front.accounts]]", FRONT_ACCOUNTS, keep=False)
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", type=Path, help="the development file, conf/gateway.toml")
    parser.add_argument("output", type=Path, help="where to write the production file")
    parser.add_argument("--data-dir", default="/var/lib/smsgw", help="node.data_dir")
    args = parser.parse_args(argv)
    token = secrets.token_urlsafe(32)
    text = production(
        args.template.read_text(encoding="utf-8"),
        args.data_dir,
        hashlib.sha256(token.encode("utf-8")).hexdigest(),
    )
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    except FileExistsError:
        print(f"{args.output} exists: kept as it is", file=sys.stderr)
        return 3
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    print(f"wrote {args.output}")
    print(f"HTTP API token (shown once, only its SHA-256 is stored): {token}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
