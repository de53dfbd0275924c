"""Issue 7, crashes: the daemon as a real process, SIGKILLed mid-send and restarted.

The harness is ``bench.crash`` (the same code runs 100,000 messages and 20 kills from
``python -m bench.crash``); here it runs at CI size.
"""

from __future__ import annotations

from pathlib import Path

from bench.crash import CrashOptions, run_crash


async def test_sigkill_mid_send_loses_nothing_and_flags_every_duplicate(tmp_path: Path) -> None:
    options = CrashOptions(messages=3000, kills=5, batch=250, binds=2, window=50, timeout=120)
    report = await run_crash(tmp_path, options)
    detail = repr(report)
    assert report.accepted == 3000, detail
    assert report.kills == 5 and report.restarts == 5, detail
    # Every accepted message is delivered, and the carrier saw it at least once.
    assert report.lost == 0 and report.never_submitted == 0, detail
    assert report.not_delivered == {}, detail
    # Extra copies only for parts in flight at a kill: window x binds per kill, all flagged.
    assert report.duplicates <= 5 * 50 * 2, detail
    assert report.unflagged_duplicates == 0, detail
    assert report.flagged >= report.duplicated_messages, detail
    # ... and the flag means something: a kill flags only what was begun, which the
    # dispatcher keeps within the windows (window x binds per kill).
    assert report.flagged <= 5 * 50 * 2, detail
    assert len(report.submitting_at_kills) == 5, detail
    assert max(report.submitting_at_kills) <= 50 * 2, detail
    # The last kill came with receipts still due: they reached the restarted daemon and
    # correlated (every message is delivered); only a lost first submit's receipt is unmatched.
    assert report.receipts_pending_at_last_kill > 0, detail
    assert report.unmatched_receipts <= report.duplicates, detail
    assert report.ok, detail
