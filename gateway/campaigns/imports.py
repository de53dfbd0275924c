"""CSV import of contacts into a list, streamed end to end.

The request body is copied to an anonymous temporary file in chunks as it arrives (never
held in memory), then the HTTP answer (202, ``running``) goes out and a background task
parses the file: ``csv.reader`` over the file reads one row at a time, every number is
checked and written in E.164 with phonenumbers (numbers already in E.164 through
:mod:`gateway.core.e164`'s fast path), and valid rows go to the store in batches
of ``BATCH_ROWS`` through its group commit. The import's record (rows, imported, rejected,
the first 1000 row errors) is saved after every batch, which is the progress
``GET /v1/imports/{id}`` shows. Parsing and number checks run in a worker thread, one batch
at a time, so a large file does not stall the event loop.

The file: UTF-8 (a BOM is taken off), a header row, then one contact per row. Column names
are matched without regard to case or surrounding spaces. ``number`` is required; ``name``
is optional; every other column becomes a contact attribute (empty cells are left out).
Row numbers in errors count the header as row 1, like a spreadsheet does, so the first
contact is row 2. A row with the wrong number of cells, a missing or invalid number is
rejected; the rest of the file goes on. A number seen twice updates the same contact.

An import interrupted by a stop of the daemon is marked ``failed`` at the next start (its
file is gone); importing the same file again is harmless, rows are upserts. One another
live node is running (its claim, gateway.store.claims) is left to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import os
import tempfile
from collections.abc import AsyncIterable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import IO, Final

from gateway.core import validation as check
from gateway.core.e164 import FastE164
from gateway.logs import log_event
from gateway.store.campaign_base import (
    IMPORT_DONE,
    IMPORT_FAILED,
    IMPORT_RUNNING,
    MAX_IMPORT_ERRORS,
    ImportJob,
    ImportRow,
)
from gateway.store.ports import Imports

log = logging.getLogger("smsgw.campaigns")

BATCH_ROWS: Final = 5000
"""Rows per store write: a few thousand keeps each commit short (some 25 ms of SQLite at
~5 us a row) while the per-commit overhead (the commit's fsync, the thread hop, the
progress record) stays small next to the rows."""
MAX_FIELD_CHARS: Final = 10_000
"""csv's field size limit: a cell longer than this is a broken file (an unclosed quote)."""
MAX_ATTRIBUTE_CHARS: Final = 1000
MAX_COLUMNS: Final = 100
DEFAULT_OPT_IN_SOURCE: Final = "import"


class CsvHeaderError(ValueError):
    """The header row is unusable: the whole import fails."""


def _columns(header: list[str]) -> tuple[int, int | None, list[tuple[int, str]]]:
    names = [h.strip().lower() for h in header]
    if "number" not in names:
        raise CsvHeaderError("the header row has no 'number' column")
    if len(names) > MAX_COLUMNS:
        raise CsvHeaderError(f"more than {MAX_COLUMNS} columns")
    seen: set[str] = set()
    for name in names:
        if not name:
            raise CsvHeaderError("a column of the header row has no name")
        if name in seen:
            raise CsvHeaderError(f"column {name!r} appears twice in the header row")
        seen.add(name)
    number = names.index("number")
    name_col = names.index("name") if "name" in names else None
    others = [(i, n) for i, n in enumerate(names) if i not in (number, name_col)]
    return number, name_col, others


_Batch = tuple[list[ImportRow], list[tuple[int, str]], int, bool]
"""What :meth:`_Parser.batch` returns: (valid rows, (row number, error), rows read, at end)."""


class _Parser:
    """Reads rows from an open text file; ``batch`` runs in a worker thread."""

    def __init__(self, text: IO[str], numbers: check.Numbers) -> None:
        self._rows: Iterator[list[str]] = csv.reader(text, strict=True)
        self._e164 = FastE164(numbers).e164
        self._number_col = 0
        self._name_col: int | None = None
        self._others: list[tuple[int, str]] = []
        self._width = 0
        self.row = 1  # the header's

    def header(self) -> None:
        try:
            header = next(self._rows)
        except StopIteration:
            raise CsvHeaderError("the file is empty: a header row is required") from None
        self._number_col, self._name_col, self._others = _columns(header)
        self._width = len(header)

    def batch(self, size: int) -> _Batch:
        """Up to ``size`` rows: (valid rows, (row number, error), rows read, at end)."""
        good: list[ImportRow] = []
        bad: list[tuple[int, str]] = []
        read = 0
        # The per-row loop of a million-row import: attributes read once into locals.
        rows, e164, width = self._rows, self._e164, self._width
        number_col, name_col, others = self._number_col, self._name_col, self._others
        row = self.row
        try:
            while read < size:
                try:
                    cells = next(rows, None)
                except csv.Error as exc:
                    # A broken quote makes the rest of the file unreadable as CSV.
                    row += 1
                    read += 1
                    bad.append((row, f"not valid CSV: {exc}"))
                    return good, bad, read, True
                if cells is None:
                    return good, bad, read, True
                row += 1
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # a blank line is not a row
                read += 1
                if len(cells) != width:
                    bad.append((row, f"has {len(cells)} cells, the header has {width} columns"))
                    continue
                raw = cells[number_col].strip()
                if not raw:
                    bad.append((row, "number: is empty"))
                    continue
                try:
                    number = e164(raw)
                except check.Invalid as exc:
                    bad.append((row, f"number: {exc}"))
                    continue
                attributes: dict[str, str] = {}
                too_long = None
                for i, key in others:
                    value = cells[i].strip()
                    if len(value) > MAX_ATTRIBUTE_CHARS:
                        too_long = key
                    if value:
                        attributes[key] = value
                if too_long is not None:
                    bad.append((row, f"{too_long}: longer than {MAX_ATTRIBUTE_CHARS} characters"))
                    continue
                name = None if name_col is None else " ".join(cells[name_col].split())
                good.append(ImportRow(number, name, attributes))
            return good, bad, read, False
        finally:
            self.row = row


class Importer:
    """Runs CSV imports for the API, each as a tracked background task."""

    def __init__(
        self,
        store: Imports,
        numbers: check.Numbers,
        clock: Callable[[], float],
        new_id: Callable[[], str],
        spool_dir: str | None = None,
    ) -> None:
        self.store = store
        self.numbers = numbers
        self.clock = clock
        self.new_id = new_id
        self.spool_dir = spool_dir
        self._tasks: set[asyncio.Task[None]] = set()
        self.took_over = 0
        """Imports of stopped nodes failed while this node runs (``take_over``)."""

    async def start(self) -> None:
        failed = await self.store.fail_running_imports(
            "the gateway stopped during the import; upload the file again", self.clock()
        )
        if failed:
            log_event(log, "import.interrupted", logging.WARNING, imports=failed)
        # A list deleted while the gateway stopped keeps members until they are removed.
        for list_id in await self.store.deleted_lists_with_members():
            removed = await self.store.purge_deleted_list(list_id)
            log_event(log, "list.delete_finished", list_id=list_id, members=removed)

    async def take_over(self) -> int:
        """Fail the imports another node left running and no longer holds (it stopped):
        their file was spooled on that node, so nobody can resume them; the operator
        uploads it again. How many. The look for imports of gateway.takeover."""
        failed = await self.store.fail_running_imports(
            "the node running the import stopped; upload the file again",
            self.clock(),
            foreign=True,
        )
        if failed:
            self.took_over += failed
            log_event(log, "import.interrupted", logging.WARNING, imports=failed, node="other")
        return failed

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def begin(
        self, list_id: int, body: AsyncIterable[bytes], opt_in_source: str
    ) -> ImportJob:
        """Spool ``body`` to disk, record the import, start parsing; the job as it starts."""
        spool = tempfile.TemporaryFile(dir=self.spool_dir)
        try:
            async for chunk in body:
                await asyncio.to_thread(spool.write, chunk)
            size = spool.tell()
            spool.seek(0)
            job = ImportJob(
                id=self.new_id(),
                list_id=list_id,
                status=IMPORT_RUNNING,
                opt_in_source=opt_in_source,
                created_at=self.clock(),
                bytes_total=size,
            )
            await self.store.save_import(job)
        except BaseException:
            spool.close()
            raise
        task = asyncio.get_running_loop().create_task(self._run(job, spool), name="import")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def wait(self) -> None:
        """Until every import running now has finished (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(self, job: ImportJob, spool: IO[bytes]) -> None:
        text = io.TextIOWrapper(spool, encoding="utf-8-sig", errors="strict", newline="")
        parser = _Parser(text, self.numbers)
        # The parser runs on a thread of its own, one batch ahead: while the store writes a
        # batch (SQLite releases the GIL, and a commit waits for its fsync), the next one is
        # parsed.
        pool = ThreadPoolExecutor(1, thread_name_prefix="import")
        parsing: Future[_Batch] | None = None
        try:
            csv.field_size_limit(MAX_FIELD_CHARS)
            await asyncio.wrap_future(pool.submit(parser.header))
            parsing = batch = pool.submit(parser.batch, BATCH_ROWS)
            at_end = False
            while not at_end:
                good, bad, read, at_end = await asyncio.wrap_future(batch)
                parsing = None
                if not at_end:
                    parsing = batch = pool.submit(parser.batch, BATCH_ROWS)
                job.rows += read
                # Where the reading is in the file (a batch ahead at most: the parser
                # reads on); the whole file once at its end.
                job.bytes_read = job.bytes_total if at_end else min(spool.tell(), job.bytes_total)
                job.imported += len(good)
                job.rejected += len(bad)
                room = MAX_IMPORT_ERRORS - len(job.errors)
                job.errors.extend({"row": row, "error": error} for row, error in bad[:room])
                # The progress goes with the rows, in one commit (the last batch's is saved
                # with the final status below).
                progress = None if at_end else job
                if good:
                    await self.store.import_rows(
                        job.list_id, good, job.opt_in_source, self.clock(), progress
                    )
                elif progress is not None:
                    await self.store.save_import(progress)
            job.status = IMPORT_DONE
        except asyncio.CancelledError:
            job.status = IMPORT_FAILED
            job.failure = "the gateway stopped during the import; upload the file again"
            job.finished_at = self.clock()
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.save_import(job))
            raise
        except (CsvHeaderError, UnicodeDecodeError) as exc:
            job.status = IMPORT_FAILED
            job.failure = (
                f"the file is not UTF-8 text (after row {parser.row})"
                if isinstance(exc, UnicodeDecodeError)
                else str(exc)
            )
        except Exception as exc:
            log.exception("import.failed import_id=%s", job.id)
            job.status = IMPORT_FAILED
            job.failure = f"internal error: {exc.__class__.__name__}"
        finally:
            if parsing is not None:
                # Cancelled or failed with a batch being parsed: let it finish (one batch,
                # tens of milliseconds) before its file is closed under it.
                wait([parsing])
            pool.shutdown(wait=False)
            text.close()
        job.finished_at = self.clock()
        await self.store.save_import(job)
        log_event(
            log,
            "import.finished",
            import_id=job.id,
            status=job.status,
            rows=job.rows,
            imported=job.imported,
            rejected=job.rejected,
        )


def spool_dir_for(store_path: str) -> str:
    """Spool imports next to the database (same disk, sized for the data)."""
    return os.path.dirname(os.path.abspath(store_path))
