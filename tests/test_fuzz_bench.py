"""The million-input decoder fuzzer (``python -m bench.fuzz_pdu``) at a CI size: it runs,
its mutations reach the body decoders (some inputs decode, most are refused), and it finds
nothing."""

from __future__ import annotations

from bench.fuzz_pdu import run


def test_pdu_fuzzer_at_ci_size_finds_no_failure() -> None:
    result = run(20_000, seed=3)
    assert result.inputs == 20_000
    assert result.failures == []
    assert result.decoded > 1_000 and result.rejected > 1_000
    assert result.framed > 0
