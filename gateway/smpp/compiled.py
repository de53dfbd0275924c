"""Straight-line encoders and decoders, generated once per PDU class from its ``BODY``.

The codec in ``gateway.smpp.pdu`` walks a class's ``BODY`` field by field, checking each one
and saying exactly what is wrong with a bad PDU. On the hot path (submit_sm, its response,
deliver_sm and its response, thousands a second on each side) that walk costs more than the
bytes it moves. The functions built here do the same work with no loop and no per-field
branch on the field's kind: consecutive one-octet fields are packed or unpacked in one step.

They only handle well-formed input. Anything unexpected (a NUL inside a C-string, a field
out of range, a body cut short, a bad TLV) makes them raise, and the caller then runs the
checked codec, which produces the real answer or the precise error: the fast path can never
accept what the checked one refuses, nor change an error message. The round-trip, golden
and fuzz tests of the codec run through both paths.

Generated source, like ``dataclasses`` and ``namedtuple`` do: the names compiled in come
only from the PDU classes' own ``BODY`` tuples, never from input.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import Any

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes, int, int], Any]


class FastPathMiss(Exception):
    """The fast path declines: the checked codec decides."""


def _groups(body: tuple[tuple[str, int], ...], u8: int) -> list[tuple[int, list[str]]]:
    """BODY as runs: consecutive one-octet fields together, every other field alone."""
    runs: list[tuple[int, list[str]]] = []
    for name, kind in body:
        if kind == u8 and runs and runs[-1][0] == u8:
            runs[-1][1].append(name)
        else:
            runs.append((kind, [name]))
    return runs


def compile_encoder(
    cls: type,
    *,
    cstr: int,
    u8: int,
    header: struct.Struct,
    tlv_head: struct.Struct,
    max_short_message: int,
) -> Encoder:
    """``encode`` for well-formed instances of ``cls``; raises on anything else."""
    body: tuple[tuple[str, int], ...] = cls.BODY  # type: ignore[attr-defined]
    # Checks first, then the whole body as one list display: no append call per field.
    lines = ["def encode(pdu):"]
    parts: list[str] = []
    for index, (kind, names) in enumerate(_groups(body, u8)):
        if kind == cstr:
            v = f"v{index}"
            lines += [f"    {v} = pdu.{names[0]}", f"    if '\\0' in {v}:", "        raise Miss"]
            parts += [f"{v}.encode('latin-1')", "b'\\0'"]
        elif kind == u8:
            fields = ", ".join(f"pdu.{n}" for n in names)
            parts.append(f"bytes(({fields},))")
        else:
            v = f"v{index}"
            lines += [
                f"    {v} = pdu.{names[0]}",
                f"    if len({v}) > MAX_SM:",
                "        raise Miss",
            ]
            parts += [f"bytes((len({v}),))", v]
    lines += [f"    out = [{', '.join(parts)}]", "    add = out.append"]
    lines += [
        "    tlvs = pdu.tlvs",
        "    if tlvs:",
        "        if not HAS_TLVS:",
        "            raise Miss",
        "        for tag, value in tlvs:",
        "            if len(value) > 0xFFFF:",
        "                raise Miss",
        "            add(TLV_HEAD(tag, len(value)))",
        "            add(value)",
        "    data = b''.join(out)",
        "    return HEADER(16 + len(data), CID, pdu.command_status, pdu.sequence_number) + data",
    ]
    namespace: dict[str, Any] = {
        "Miss": FastPathMiss,
        "MAX_SM": max_short_message,
        "HAS_TLVS": cls.HAS_TLVS,  # type: ignore[attr-defined]
        "TLV_HEAD": tlv_head.pack,
        "HEADER": header.pack,
        "CID": cls.command_id,  # type: ignore[attr-defined]
    }
    exec("\n".join(lines), namespace)  # source built from BODY names only
    encoder: Encoder = namespace["encode"]
    return encoder


def compile_decoder(
    cls: type,
    *,
    cstr: int,
    u8: int,
    decode_tlvs: Callable[[bytes, int, int, int], tuple[tuple[int, bytes], ...]],
) -> Decoder:
    """``decode`` of a complete, well-formed body of ``cls``; raises on anything else."""
    body: tuple[tuple[str, int], ...] = cls.BODY  # type: ignore[attr-defined]
    lines = ["def decode(body, seq, status):", "    end = len(body)", "    pos = 0"]
    args: list[str] = []
    for kind, names in _groups(body, u8):
        if kind == cstr:
            name = names[0]
            lines += [
                "    nul = body.index(0, pos)",
                f"    {name} = body[pos:nul].decode('latin-1')",
                "    pos = nul + 1",
            ]
        elif kind == u8:
            if len(names) == 1:
                lines += [f"    {names[0]} = body[pos]", "    pos += 1"]
            else:
                targets = ", ".join(names)
                lines += [
                    f"    {targets} = body[pos:pos + {len(names)}]",
                    f"    pos += {len(names)}",
                ]
        else:
            name = names[0]
            lines += [
                "    n = body[pos]",
                "    pos += 1",
                "    if pos + n > end:",
                "        raise Miss",
                f"    {name} = body[pos:pos + n]",
                "    pos += n",
            ]
        args += [f"{n}={n}" for n in names]
    if cls.HAS_TLVS:  # type: ignore[attr-defined]
        lines.append("    tlvs = DECODE_TLVS(body, pos, CID, seq) if pos < end else ()")
        args.append("tlvs=tlvs")
    namespace: dict[str, Any] = {
        "Miss": FastPathMiss,
        "CLS": cls,
        "CID": cls.command_id,  # type: ignore[attr-defined]
        "DECODE_TLVS": decode_tlvs,
        "NEW": object.__new__,
    }
    lines += _construct(cls, ["sequence_number=seq", "command_status=status", *args], namespace)
    exec("\n".join(lines), namespace)  # source built from BODY names only
    decoder: Decoder = namespace["decode"]
    return decoder


def _construct(cls: type, assignments: list[str], namespace: dict[str, Any]) -> list[str]:
    """The lines that build and return the instance from ``name=value`` assignments.

    A keyword call to a dataclass ``__init__`` with twenty fields costs more than decoding
    them (keyword matching); for a slots dataclass with no ``__post_init__`` whose every field
    either is assigned here or has a plain default, the instance is made with
    ``object.__new__`` and its slots are stored one by one: the same object, several times
    faster. Any other class keeps the ``__init__`` call.
    """
    values = dict(a.split("=", 1) for a in assignments)
    fields = dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()
    direct = (
        bool(fields)
        and "__slots__" in cls.__dict__
        and not hasattr(cls, "__post_init__")
        and all(f.name in values or f.default is not dataclasses.MISSING for f in fields)
        and set(values) <= {f.name for f in fields}
    )
    if not direct:
        return [f"    return CLS({', '.join(assignments)})"]
    lines = ["    obj = NEW(CLS)"]
    for f in fields:
        if f.name in values:
            lines.append(f"    obj.{f.name} = {values[f.name]}")
        else:
            key = f"DEFAULT_{f.name}"
            namespace[key] = f.default
            lines.append(f"    obj.{f.name} = {key}")
    lines.append("    return obj")
    return lines
