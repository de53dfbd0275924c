"""Instructions per message of the store's write path, counted, not timed.

    .venv/bin/python -m bench.store_instructions [N1] [N2] [batch]

Runs ``bench.bench_store_path`` twice under valgrind's callgrind (N1 and N2 messages,
``batch`` a commit, synchronous=full) and prints the instructions executed per message:
(instructions at N2 - instructions at N1) / (N2 - N1), so the interpreter's start-up and
imports cancel out. On a shared machine wall-clock and CPU-time figures move by 20-50 %
from one run to the next (other processes, caches, frequency); an instruction count moves
by well under 1 %, so a schema or SQL change of a few percent shows. It counts work, not
time: a change that saves instructions but waits more (fsync, lock) needs a timed run too.
Each run takes about a minute (valgrind runs code ~50 times slower). Needs ``valgrind``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

_COLLECTED = re.compile(r"Collected : (\d+)")


def count(n: int, batch: int) -> int:
    """Instructions callgrind counted for one ``bench_store_path`` run of ``n`` messages."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "bench.bench_store_path",
            str(n),
            str(batch),
            "full",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(n1: int, n2: int, batch: int) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    if n2 <= n1:
        raise SystemExit("N2 must be larger than N1")
    low, high = count(n1, batch), count(n2, batch)
    print(
        f"store path, batch {batch}: {(high - low) / (n2 - n1):,.0f} instructions per message"
        f" ({low:,} at {n1}, {high:,} at {n2})"
    )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(
        args[0] if args else 2_000,
        args[1] if len(args) > 1 else 6_000,
        args[2] if len(args) > 2 else 2_000,
    )
