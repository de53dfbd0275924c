"""Fuzz the SMPP decoder and framer with a million inputs (issue 7): ``python -m bench.fuzz_pdu``.

    .venv/bin/python -m bench.fuzz_pdu                       # 1,000,000 inputs, seed 1
    .venv/bin/python -m bench.fuzz_pdu --inputs 5000000 --seed 9

A seeded mutational fuzzer (no extra dependency; CI runs the hypothesis fuzz tests in
tests/test_pdu.py and tests/test_session.py at a few hundred examples each). Seeds are valid
frames of every PDU class we know, with and without TLVs; each input is a seed mutated
(1-4 times: bit flips, random bytes, truncation, insertion, deletion, a rewritten command_length,
command_id or TLV length, junk appended) or, one time in ten, pure noise. Every input goes to
``decode``; one in eight also goes through a ``Framer`` in random chunks, every frame it
yields decoded. Whatever decodes must encode again (or refuse with EncodeError), and decode
back to an equal value.

Failures: any exception other than DecodeError from decode or the framer, any exception other
than EncodeError from encode, a decoded value whose re-encoding decodes to something else,
and a framer that buffers more than its limit. Exits 1 on any, printing the first inputs.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
import traceback
from dataclasses import dataclass, field

from gateway.smpp.constants import HEADER_LENGTH, Tag
from gateway.smpp.errors import DecodeError, EncodeError
from gateway.smpp.pdu import (
    PDU_CLASSES,
    DeliverSm,
    Framer,
    Pdu,
    SubmitSm,
    decode,
    encode,
)

FRAMER_LIMIT = 4096
"""A small framer limit, so hostile lengths above it are common in the mutated inputs."""


def seeds() -> list[bytes]:
    out: list[bytes] = []
    for _command_id, cls in sorted(PDU_CLASSES.items()):
        try:
            out.append(encode(cls(sequence_number=7)))
        except EncodeError:
            continue
    out.append(
        encode(
            SubmitSm(
                sequence_number=9,
                source_addr="ACME",
                destination_addr="33612345678",
                esm_class=0x40,
                registered_delivery=1,
                data_coding=8,
                short_message=b"\x05\x00\x03\x01\x02\x01" + "héllo".encode("utf-16-be"),
                tlvs=((Tag.USER_MESSAGE_REFERENCE, b"\x00\x01"),),
            )
        )
    )
    out.append(
        encode(
            DeliverSm(
                sequence_number=3,
                esm_class=0x04,
                short_message=b"id:0A1B sub:001 dlvrd:001 submit date:2401011200 done date:"
                b"2401011201 stat:DELIVRD err:000 text:hi",
                tlvs=(
                    (Tag.RECEIPTED_MESSAGE_ID, b"0A1B\x00"),
                    (Tag.MESSAGE_STATE, b"\x02"),
                    (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x00"),
                ),
            )
        )
    )
    return out


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(10)
        if op == 0 and b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 2 and b:
            del b[rng.randrange(len(b)) :]
        elif op == 3:
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 4 and b:
            i = rng.randrange(len(b))
            del b[i : i + rng.randint(1, 16)]
        elif op == 5 and len(b) >= 4:
            length = rng.choice([0, 1, 15, 16, len(b) - 1, len(b) + 1, 0xFFFFFFFF])
            length = rng.choice([length, rng.randrange(1 << 32)])
            b[0:4] = struct.pack(">I", length)
        elif op == 6 and len(b) >= 8:
            b[4:8] = struct.pack(">I", rng.choice(sorted(PDU_CLASSES)) ^ rng.choice([0, 1 << 31]))
        elif op == 7:
            b += rng.randbytes(rng.randint(1, 64))
        elif op == 8 and len(b) > HEADER_LENGTH + 4:
            # A TLV header at a random spot with a hostile length.
            i = rng.randrange(HEADER_LENGTH, len(b) - 3)
            b[i : i + 4] = struct.pack(">HH", rng.randrange(1 << 16), rng.randrange(1 << 16))
        elif op == 9 and len(b) >= 4:
            struct.pack_into(">I", b, 0, len(b))  # make command_length consistent again
    if len(b) >= 4 and rng.random() < 0.5:
        # Half the inputs announce their true length, so the body decoders see them.
        struct.pack_into(">I", b, 0, len(b))
    return bytes(b)


@dataclass
class FuzzResult:
    inputs: int = 0
    decoded: int = 0
    rejected: int = 0
    framed: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _check_decoded(pdu: Pdu, data: bytes, result: FuzzResult) -> None:
    try:
        again = encode(pdu)
    except EncodeError:
        return
    except Exception:
        result.failures.append(f"encode raised on {data.hex()}:\n{traceback.format_exc()}")
        return
    try:
        back = decode(again)
    except Exception:
        result.failures.append(f"re-decode raised on {data.hex()}:\n{traceback.format_exc()}")
        return
    if back != pdu:
        result.failures.append(f"round trip changed the value of {data.hex()}: {pdu!r} {back!r}")


def _frame(rng: random.Random, data: bytes, result: FuzzResult) -> None:
    framer = Framer(max_length=FRAMER_LIMIT)
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 64)
        for item in framer.feed(data[pos : pos + step]):
            if isinstance(item, DecodeError):
                continue
            result.framed += 1
            try:
                decode(item)
            except DecodeError:
                pass
        if framer.buffered > FRAMER_LIMIT + HEADER_LENGTH:
            result.failures.append(f"framer buffered {framer.buffered} octets of {data.hex()}")
            return
        pos += step


def run(inputs: int, seed: int, max_failures: int = 20) -> FuzzResult:
    rng = random.Random(seed)
    corpus = seeds()
    result = FuzzResult()
    started = time.perf_counter()
    for n in range(inputs):
        if n % 10 == 9:
            data = rng.randbytes(rng.randint(0, 300))
        else:
            data = mutate(rng, rng.choice(corpus))
        result.inputs += 1
        try:
            pdu = decode(data)
        except DecodeError:
            result.rejected += 1
        except Exception:
            result.failures.append(f"decode raised on {data.hex()}:\n{traceback.format_exc()}")
        else:
            result.decoded += 1
            _check_decoded(pdu, data, result)
        if n % 8 == 0:
            try:
                _frame(rng, data + rng.choice(corpus), result)
            except Exception:
                result.failures.append(f"framer raised on {data.hex()}:\n{traceback.format_exc()}")
        if len(result.failures) >= max_failures:
            break
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_pdu", description=__doc__)
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = run(args.inputs, args.seed)
    print(f"inputs        {result.inputs:,} (seed {args.seed})")
    print(f"decoded       {result.decoded:,}")
    print(f"rejected      {result.rejected:,} (DecodeError)")
    print(f"frames        {result.framed:,} through the framer")
    print(f"failures      {len(result.failures)}")
    print(f"seconds       {result.seconds}")
    for failure in result.failures[:5]:
        print("---\n" + failure)
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
