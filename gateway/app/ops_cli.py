"""``smsgw status | send | campaign ... | list ... | messages list``: the command-line client
of the HTTP API.

Where the gateway is
    ``--url``, else ``$SMSGW_URL``, else the ``[http]`` host and port of the configuration
    file (``--config``, default conf/gateway.toml; a wildcard host is reached on 127.0.0.1),
    else http://127.0.0.1:8775.
Who we are
    ``--token``, else ``$SMSGW_TOKEN``. The configuration holds only SHA-256 digests of
    tokens, so it cannot supply one. ``status`` needs none (it reads /healthz and /metrics).
Output
    Lines for people by default; ``--json`` prints the API's JSON answers (one document) for
    programs. Errors go to stderr with the API's message and every field error; the exit
    code is 0 on success, 1 when the gateway refused or failed the request, 2 for bad usage
    or a gateway that cannot be reached.
Files to send
    ``smsgw send --file F``: JSON lines (one message object per line, the fields of
    ``POST /v1/messages``) or CSV with a header row (``to``, ``from``, ``text`` and any other
    message field). Sent in chunks through ``/v1/messages/batch`` with a progress bar on
    stderr; each chunk carries an ``Idempotency-Key`` made of the file's digest and the
    chunk's number, so a chunk retried after a 503 (draining) or a lost answer is never
    accepted twice. A chunk refused (400/422) is reported with its items' line numbers and
    the rest of the file still goes: in text, the field errors first with their lines, then
    per refused chunk how many other messages it held.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

DEFAULT_URL: Final = "http://127.0.0.1:8775"
DEFAULT_CONFIG: Final = "conf/gateway.toml"
DEFAULT_CHUNK: Final = 1000
"""Messages per batch request: well under the API's 10,000, so one commit stays short and a
progress bar moves."""
RETRIES: Final = 5
"""Attempts per request answered 503 or not answered at all (Retry-After is honoured)."""
MAX_RETRY_WAIT: Final = 30.0
IMPORT_POLL_SECONDS: Final = 0.5

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2


class CliError(Exception):
    """A failure to report on stderr, with the exit code it means."""

    def __init__(self, message: str, code: int = EXIT_REFUSED, body: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = body


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def _describe_error(status: int, body: bytes) -> tuple[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}", None
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return f"HTTP {status}", doc
    lines = [f"HTTP {status} {error.get('code', '')}: {error.get('message', '')}"]
    for d in error.get("details") or []:
        where = d.get("path", "")
        if "index" in d:
            where = f"[{d['index']}] {where}"
        lines.append(f"  - {where}: {d.get('message', '')}")
    return "\n".join(lines), doc


class Client:
    """A small synchronous HTTP client for the gateway's API (stdlib urllib)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        timeout: float = 30.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._sleep = sleep or (lambda seconds: time.sleep(seconds))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        auth: bool = True,
        wait_unavailable: bool = True,
    ) -> Response:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        hdrs = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            hdrs["Content-Type"] = content_type
        if auth:
            if not self.token:
                raise CliError("no token: give --token or set SMSGW_TOKEN", EXIT_USAGE)
            hdrs["Authorization"] = f"Bearer {self.token}"
        for attempt in range(1, RETRIES + 1):
            req = urllib.request.Request(self.url + path, data=data, headers=hdrs, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    return Response(r.status, dict(r.headers.items()), r.read())
            except urllib.error.HTTPError as exc:
                payload = exc.read()
                if exc.code == 503 and attempt < RETRIES and wait_unavailable:
                    self._sleep(_retry_after(exc.headers.get("Retry-After"), attempt))
                    continue
                message, doc = _describe_error(exc.code, payload)
                raise CliError(message, EXIT_REFUSED, doc) from None
            except (urllib.error.URLError, OSError) as exc:
                # Not answered: safe to retry only when the request is idempotent.
                idempotent = method in ("GET", "HEAD") or "Idempotency-Key" in hdrs
                if idempotent and attempt < RETRIES:
                    self._sleep(min(MAX_RETRY_WAIT, 0.5 * 2**attempt))
                    continue
                reason = getattr(exc, "reason", exc)
                raise CliError(f"cannot reach {self.url}: {reason}", EXIT_USAGE) from None
        raise AssertionError("unreachable")

    def get(self, path: str, auth: bool = True) -> Any:
        return self.request("GET", path, auth=auth).json()

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.request("POST", path, body if body is not None else {}, headers=headers).json()


def _retry_after(value: str | None, attempt: int) -> float:
    try:
        seconds = float(value or "")
    except ValueError:
        seconds = 0.5 * 2**attempt
    return min(MAX_RETRY_WAIT, max(0.0, seconds))


# -- where and who --------------------------------------------------------------------------


def url_from_config(path: str) -> str | None:
    """``http://host:port`` from a configuration file's ``[http]``, if it can be read."""
    try:
        with open(path, "rb") as f:
            http = tomllib.load(f).get("http", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    host = str(http.get("host", "127.0.0.1"))
    port = http.get("port", 8775)
    if not isinstance(port, int) or port <= 0:
        return None
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def resolve(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Client:
    env = dict(os.environ) if environ is None else environ
    url = args.url or env.get("SMSGW_URL") or url_from_config(args.config) or DEFAULT_URL
    token = args.token or env.get("SMSGW_TOKEN") or None
    return Client(url, token, args.timeout)


# -- output ---------------------------------------------------------------------------------


def emit(args: argparse.Namespace, doc: Any, text: Callable[[Any], str] | None = None) -> None:
    out: IO[str] = args.stdout
    if args.json or text is None:
        out.write(json.dumps(doc, ensure_ascii=False, indent=None if args.json else 2) + "\n")
    else:
        out.write(text(doc) + "\n")


class Progress:
    """A one-line progress bar on stderr; silent when stderr is not a terminal (unless
    forced), so logs of scripted runs stay clean."""

    WIDTH: Final = 30

    def __init__(self, total: int, label: str, stream: IO[str], enabled: bool) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream
        self.enabled = enabled
        self.started = time.monotonic()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        share = min(1.0, done / self.total)
        filled = int(share * self.WIDTH)
        elapsed = max(time.monotonic() - self.started, 1e-9)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {done}/{self.total} {share:4.0%} {done / elapsed:,.0f}/s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# -- status ---------------------------------------------------------------------------------


def _metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def status_doc(client: Client) -> dict[str, Any]:
    """Binds from /healthz; queues and rates from /metrics."""
    try:
        # A 503 (draining, store refusing work) is an answer here, not a reason to wait.
        health = client.request("GET", "/healthz", auth=False, wait_unavailable=False).json()
    except CliError as exc:
        if not isinstance(exc.body, dict) or "binds" not in exc.body:
            raise
        health = exc.body  # 503 while draining still describes the binds
    metrics = _metrics(client.request("GET", "/metrics", auth=False).body.decode())
    queues = {s[0].get("carrier", ""): int(s[1]) for s in metrics.get("smsgw_queue_depth", [])}
    rates = {s[0].get("bind", ""): s[1] for s in metrics.get("smsgw_bind_submit_rate", [])}
    sent = {s[0].get("bind", ""): int(s[1]) for s in metrics.get("smsgw_submit_sm_total", [])}
    binds = []
    for b in health.get("binds", []):
        row = dict(b)
        row["submit_rate"] = rates.get(b.get("bind", ""), 0.0)
        row["submitted"] = sent.get(b.get("bind", ""), 0)
        binds.append(row)
    return {
        "url": client.url,
        "status": health.get("status"),
        "store": health.get("store"),
        "binds": binds,
        "queues": queues,
        "submit_rate": sum(rates.values()),
        "cluster": health.get("cluster"),
    }


def _cluster_text(cluster: dict[str, Any]) -> list[str]:
    """The nodes sharing the database, each with its bind slots and their lease ages."""
    fenced = " FENCED (cannot renew its leases: binds down)" if cluster.get("fenced") else ""
    lines = [
        f"cluster: node {cluster.get('node')}, lease {cluster.get('lease_seconds')} s,"
        f" renewed {cluster.get('last_renewal_age')} s ago{fenced}"
    ]
    lines.append(f"{'node':<20} {'live':<5} {'http':<22} binds (carrier/slot: lease age)")
    for node in cluster.get("nodes") or []:
        slots = ", ".join(
            f"{b.get('carrier')}/{b.get('slot')}: {b.get('lease_age')} s"
            for b in node.get("binds") or []
        )
        live = "yes" if node.get("live") else "no"
        lines.append(
            f"{node.get('id', ''):<20} {live:<5} {node.get('http', ''):<22} {slots or '-'}"
        )
    return lines


def _status_text(doc: dict[str, Any]) -> str:
    lines = [f"smsgw at {doc['url']}: {doc['status']}"]
    lines.append(f"{'bind':<20} {'state':<12} {'msg/s':>8} {'sent':>10}  last error")
    for b in doc["binds"]:
        lines.append(
            f"{b.get('bind', ''):<20} {b.get('state', ''):<12} {b['submit_rate']:>8.1f}"
            f" {b['submitted']:>10}  {b.get('last_error', '')}"
        )
    lines.append(
        "queued parts: " + (", ".join(f"{c}={n}" for c, n in doc["queues"].items()) or "-")
    )
    lines.append(f"submit rate: {doc['submit_rate']:.1f} msg/s")
    cluster = doc.get("cluster")
    if isinstance(cluster, dict):
        lines.extend(_cluster_text(cluster))
    store = doc.get("store")
    if isinstance(store, dict) and store.get("status") != "ok":
        for reason, detail in (store.get("reasons") or {}).items():
            lines.append(f"store: {reason}: {detail}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    emit(args, status_doc(resolve(args)), _status_text)
    return EXIT_OK


# -- send -----------------------------------------------------------------------------------

MESSAGE_FIELDS: Final = ("client_ref", "callback_url", "validity", "scheduled_at", "priority")
INT_FIELDS: Final = frozenset({"validity", "priority"})


def read_messages(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, message) from a JSON-lines or CSV file (see module doc)."""
    text = path.read_text(encoding="utf-8-sig")
    first = next((line for line in text.splitlines() if line.strip()), "")
    if first.lstrip().startswith("{"):
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    item = json.loads(line)
                except ValueError as exc:
                    raise CliError(f"{path}:{n}: not JSON: {exc}", EXIT_USAGE) from None
                yield n, item
        return
    reader = csv.DictReader(io.StringIO(text))
    missing = {"to", "from", "text"} - set(reader.fieldnames or ())
    if missing:
        raise CliError(f"{path}: CSV header lacks {', '.join(sorted(missing))}", EXIT_USAGE)
    for row in reader:
        message: dict[str, Any] = {}
        for key, value in row.items():
            if key is None or value is None or value == "":
                continue
            message[key] = int(value) if key in INT_FIELDS and value.isdigit() else value
        yield reader.line_num, message


def _single(args: argparse.Namespace) -> dict[str, Any]:
    msg: dict[str, Any] = {"to": args.to, "from": args.sender, "text": args.text}
    for name in MESSAGE_FIELDS:
        value = getattr(args, name)
        if value is not None:
            msg[name] = value
    return msg


def cmd_send(args: argparse.Namespace) -> int:
    client = resolve(args)
    if args.file is None:
        if not (args.to and args.sender and args.text is not None):
            raise CliError("send: give --to, --from and --text, or --file", EXIT_USAGE)
        headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
        doc = client.post("/v1/messages", _single(args), headers)
        emit(args, doc, lambda d: f"{d['id']} {d['status']} parts={d['parts']} to={d['to']}")
        return EXIT_OK
    path = Path(args.file)
    items = list(read_messages(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:32]
    progress = Progress(len(items), "sending", sys.stderr, args.progress or sys.stderr.isatty())
    accepted: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    done = 0
    for start in range(0, len(items), args.chunk):
        chunk = items[start : start + args.chunk]
        key = f"smsgw-send-{digest}-{start // args.chunk}"
        try:
            doc = client.post(
                "/v1/messages/batch",
                {"messages": [m for _, m in chunk]},
                {"Idempotency-Key": key},
            )
            accepted.extend(doc.get("messages", []))
        except CliError as exc:
            if exc.code != EXIT_REFUSED:
                raise
            refused.extend(_refusals(exc, chunk, start // args.chunk))
        done += len(chunk)
        progress.update(done)
    progress.close()
    result = {
        "file": str(path),
        "messages": len(items),
        "accepted": len(accepted),
        "refused": len(refused),
        "ids": [m.get("id") for m in accepted],
        "errors": refused,
    }
    emit(args, result, _send_text)
    return EXIT_OK if not refused else EXIT_REFUSED


def _refusals(
    exc: CliError, chunk: list[tuple[int, dict[str, Any]]], number: int
) -> list[dict[str, Any]]:
    """Every item of a refused chunk (the API accepts a batch whole or not at all): with the
    errors the API named for it (``cause`` "field"), or, for the others, refused with their
    chunk (``cause`` "chunk", the API's message)."""
    details: list[dict[str, Any]] = []
    if isinstance(exc.body, dict):
        details = (exc.body.get("error") or {}).get("details") or []
    by_index: dict[int, list[str]] = {}
    for d in details:
        index = d.get("index")
        if isinstance(index, int):
            # "messages[3].to" names the item by its place in the chunk: the line says that.
            path = str(d.get("path", "")).removeprefix(f"messages[{index}]").lstrip(".")
            by_index.setdefault(index, []).append(f"{path or 'message'}: {d.get('message')}")
    first_line = str(exc).splitlines()[0]
    out: list[dict[str, Any]] = []
    for i, (line, _) in enumerate(chunk):
        own = by_index.get(i)
        cause = "field" if own else "chunk"
        errors = own or [f"batch refused ({first_line})"]
        out.append({"line": line, "errors": errors, "cause": cause, "chunk": number})
    return out


SHOWN_ERRORS: Final = 20
"""Lines with field errors printed by ``send --file`` in text mode (``--json`` has all)."""


def _send_text(doc: dict[str, Any]) -> str:
    """The field errors first, with their file line, then one line per chunk for the
    messages refused only because their chunk was."""
    lines = [f"{doc['file']}: {doc['accepted']} accepted, {doc['refused']} refused"]
    own = [e for e in doc["errors"] if e.get("cause") == "field"]
    for e in own[:SHOWN_ERRORS]:
        lines.append(f"  line {e['line']}: {'; '.join(e['errors'])}")
    if len(own) > SHOWN_ERRORS:
        lines.append(f"  ... {len(own) - SHOWN_ERRORS} more lines with errors (use --json)")
    chunks: dict[int, list[dict[str, Any]]] = {}
    for e in doc["errors"]:
        chunks.setdefault(e.get("chunk", 0), []).append(e)
    for entries in chunks.values():
        others = [e for e in entries if e.get("cause") != "field"]
        if not others:
            continue
        first, last = entries[0]["line"], entries[-1]["line"]
        why = (
            "because of the errors above in it"
            if len(others) < len(entries)
            else others[0]["errors"][0].removeprefix("batch refused (").removesuffix(")")
        )
        lines.append(
            f"  lines {first}-{last}: {len(others)} other messages not sent (a chunk is"
            f" refused whole: {why})"
        )
    return "\n".join(lines)


# -- campaigns ------------------------------------------------------------------------------


def _campaign_line(c: dict[str, Any]) -> str:
    return f"{c.get('id')} {c.get('status', ''):<10} {c.get('name', '')}"


def list_ids(client: Client, given: list[str]) -> list[int]:
    """``--list`` values as the API wants them: list ids (integers). A value of digits is an
    id; anything else is a list's name, looked up with ``GET /v1/lists`` (it must name
    exactly one list)."""
    ids: list[int] = []
    lists: list[dict[str, Any]] | None = None
    for value in given:
        value = value.strip()
        if value.isascii() and value.isdigit():
            ids.append(int(value))
            continue
        if lists is None:
            doc = client.get("/v1/lists")
            lists = doc.get("items", []) if isinstance(doc, dict) else []
        found = [int(x["id"]) for x in lists if x.get("name") == value]
        if not found:
            raise CliError(f"--list {value!r}: no list has this id or name", EXIT_USAGE)
        if len(found) > 1:
            raise CliError(
                f"--list {value!r}: {len(found)} lists have this name (ids"
                f" {', '.join(map(str, found))}); give the id",
                EXIT_USAGE,
            )
        ids.append(found[0])
    return ids


def _campaign_body(args: argparse.Namespace, client: Client) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.body:
        with open(args.body, encoding="utf-8") as f:
            body = json.load(f)
        if not isinstance(body, dict):
            raise CliError(f"{args.body}: must hold a JSON object", EXIT_USAGE)
    flags: dict[str, Any] = {
        "name": args.name,
        "from": args.sender,
        "text": args.text,
        "template_id": args.template,
        "lists": list_ids(client, args.list) if args.list else None,
        "tags": args.tag or None,
        "courtesy_reply": args.courtesy_reply,
        "reply_window_days": args.reply_window_days,
        "start_at": args.start_at,
        "tps": args.tps,
    }
    if args.two_way:
        flags["two_way"] = True
    if args.keywords:
        flags["keywords"] = json.loads(args.keywords)
    if args.send_window:
        flags["send_window"] = _send_window(args.send_window)
    if args.digest_to:
        flags["digest"] = {"to": args.digest_to, "days": args.digest_days}
    body.update({k: v for k, v in flags.items() if v is not None})
    wanted = ("name", "from", "template_id" if "template_id" in body else "text", "lists")
    missing = [k for k in wanted if k not in body]
    if missing:
        raise CliError(f"campaign create: missing {', '.join(missing)}", EXIT_USAGE)
    return body


def _send_window(text: str) -> dict[str, str]:
    """``09:00-20:00@Europe/Paris`` -> {"from", "to", "time_zone"}."""
    try:
        hours, zone = text.split("@", 1)
        start, end = hours.split("-", 1)
    except ValueError:
        raise CliError(
            f"--send-window {text!r}: expected HH:MM-HH:MM@Zone/Name", EXIT_USAGE
        ) from None
    return {"from": start, "to": end, "time_zone": zone}


def cmd_campaign(args: argparse.Namespace) -> int:
    client = resolve(args)
    action = args.action
    if action == "create":
        emit(args, client.post("/v1/campaigns", _campaign_body(args, client)), _campaign_line)
    elif action == "list":
        doc = client.get("/v1/campaigns")
        items = doc if isinstance(doc, list) else (doc or {}).get("items", [])
        emit(args, doc, lambda _: "\n".join(_campaign_line(c) for c in items) or "no campaigns")
    elif action == "show":
        emit(args, client.get(f"/v1/campaigns/{_q(args.id)}"))
    elif action in ("start", "pause", "resume", "cancel"):
        emit(args, client.post(f"/v1/campaigns/{_q(args.id)}/{action}"), _campaign_line)
    elif action == "stats":
        emit(args, client.get(f"/v1/campaigns/{_q(args.id)}/stats"), _stats_text)
    elif action == "send-to-responders":
        body: dict[str, Any] = {"text": args.text}
        if args.name:
            body["name"] = args.name
        if args.keyword:
            body["keyword"] = args.keyword
        if args.clicked:
            body["clicked"] = True
        path = f"/v1/campaigns/{_q(args.id)}/send-to-responders"
        emit(args, client.post(path, body), _campaign_line)
    return EXIT_OK


_TIMELINE_COLUMNS: Final = (
    "sent",
    "delivered",
    "undelivered",
    "clicks",
    "unique_clickers",
    "replies",
    "unique_responders",
    "opt_outs",
)


def _stats_text(s: dict[str, Any]) -> str:
    keys = (
        "recipients sent delivered undeliverable expired rejected pending delivery_rate"
        " replies unique_responders reply_rate opt_outs resubscriptions replies_from_others"
        " median_seconds_to_first_reply clicks unique_clickers click_rate bot_requests"
        " undelivered"
    ).split()
    lines = [f"{k:<30} {s.get(k)}" for k in keys if k in s]
    for kw, n in (s.get("answers_per_keyword") or {}).items():
        lines.append(f"  keyword {kw:<21} {n}")
    funnel = s.get("funnel")
    if isinstance(funnel, dict):
        lines.append(
            f"funnel: audience {funnel.get('audience')}"
            f" -> skipped {funnel.get('skipped_opted_out')} opted out,"
            f" {funnel.get('skipped_invalid')} invalid -> sent {funnel.get('sent')}"
            f" -> delivered {funnel.get('delivered')} -> clicked {funnel.get('clicked')}"
            f" -> replied {funnel.get('replied')}"
        )
    by_status = s.get("undelivered_by_status") or {}
    if by_status:
        shown = ", ".join(f"{k} {v}" for k, v in by_status.items())
        lines.append(f"undelivered by status: {shown}")
    for error, n in (s.get("undelivered_by_error") or {}).items():
        lines.append(f"  error {error:<40} {n:>8}")
    timelines = s.get("timelines") or {}
    for axis, label in (("per_hour", "hour"), ("per_day", "day")):
        lines.extend(_timeline_text(timelines.get(axis), label))
    return "\n".join(lines)


def _timeline_text(timeline: Any, label: str) -> list[str]:
    """The periods with something in them, one line each, numbered from the start (0: the
    first hour or day); an empty period is left out."""
    if not isinstance(timeline, dict):
        return []
    columns = [c for c in _TIMELINE_COLUMNS if isinstance(timeline.get(c), list)]
    periods = max((len(timeline[c]) for c in columns), default=0)
    rows = []
    for k in range(periods):
        values = [timeline[c][k] if k < len(timeline[c]) else 0 for c in columns]
        if any(values):
            rows.append(f"{k:<10}" + "".join(f"{v:>18}" for v in values))
    if not rows:
        return []
    return [f"{label:<10}" + "".join(f"{c:>18}" for c in columns), *rows]


def _q(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


# -- templates ------------------------------------------------------------------------------


def _rendering_text(r: dict[str, Any] | None) -> str:
    if not r:
        return "(none)"
    how = r.get("problem") or f"{r.get('encoding')}, {r.get('parts')} part(s)"
    return f"{r.get('number')}: {r.get('characters')} characters, {how}\n  {r.get('text')}"


def _preview_text(d: dict[str, Any]) -> str:
    lines = [f"sample  {_rendering_text(d.get('sample'))}"]
    audience = d.get("audience")
    if isinstance(audience, dict):
        lines.append(
            f"longest of {audience.get('contacts')} contacts"
            f"  {_rendering_text(audience.get('longest'))}"
        )
    return "\n".join(lines)


def cmd_template(args: argparse.Namespace) -> int:
    """``template create|list|show|update|delete|preview``: /v1/templates."""
    client = resolve(args)

    def line(t: dict[str, Any]) -> str:
        return f"{t.get('id')} {t.get('name')!r}: {t.get('text')}"

    action = args.action
    if action == "create":
        emit(args, client.post("/v1/templates", {"name": args.name, "text": args.text}), line)
    elif action == "list":
        doc = client.get("/v1/templates")
        items = (doc or {}).get("items", [])
        emit(args, doc, lambda _: "\n".join(line(t) for t in items) or "no templates")
    elif action == "show":
        emit(args, client.get(f"/v1/templates/{_q(args.id)}"), line)
    elif action == "update":
        body = {"name": args.name, "text": args.text}
        emit(args, client.request("PUT", f"/v1/templates/{_q(args.id)}", body).json(), line)
    elif action == "delete":
        client.request("DELETE", f"/v1/templates/{_q(args.id)}")
        print(f"template {args.id} deleted")
    elif action == "preview":
        preview: dict[str, Any] = {}
        if args.contact:
            preview["contact"] = args.contact
        if args.list:
            preview["lists"] = list_ids(client, args.list)
        path = f"/v1/templates/{_q(args.id)}/preview"
        emit(args, client.post(path, preview), _preview_text)
    return EXIT_OK


# -- messages -------------------------------------------------------------------------------

MESSAGE_FILTERS: Final = ("campaign_id", "status", "to", "client_ref", "since", "until")
MAX_PAGE: Final = 1000
"""The API's largest page (gateway.http.message_list.MAX_LIMIT)."""


def _message_line(m: dict[str, Any]) -> str:
    extra = " ".join(
        f"{k}={m[k]}" for k in ("client_ref", "campaign_id", "error") if m.get(k) is not None
    )
    return (
        f"{m.get('id')} {m.get('status', ''):<13} {m.get('to', ''):<16} {m.get('from', ''):<11}"
        f" {m.get('created_at', '')} {extra}".rstrip()
    )


def cmd_messages(args: argparse.Namespace) -> int:
    """``messages list``: pages of GET /v1/messages followed until ``--limit`` messages
    (or every one with ``--all``)."""
    client = resolve(args)
    wanted = None if args.all else args.limit
    if wanted is not None and wanted < 1:
        raise CliError("--limit must be 1 or more", EXIT_USAGE)
    params = {k: getattr(args, k) for k in MESSAGE_FILTERS if getattr(args, k) is not None}
    params["order"] = args.order
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page_size = MAX_PAGE if wanted is None else min(MAX_PAGE, wanted - len(items))
        query = {**params, "limit": str(page_size)}
        if cursor is not None:
            query["after"] = cursor
        doc = client.get("/v1/messages?" + urllib.parse.urlencode(query))
        items.extend(doc["items"])
        cursor = doc["next"]
        if cursor is None or (wanted is not None and len(items) >= wanted):
            break
    emit(
        args,
        {"items": items, "next": cursor},
        lambda d: "\n".join(_message_line(m) for m in d["items"]) or "no messages",
    )
    return EXIT_OK


# -- contact lists --------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    client = resolve(args)
    if args.action == "create":
        emit(
            args, client.post("/v1/lists", {"name": args.name}), lambda d: f"{d['id']} {d['name']}"
        )
    elif args.action == "show":
        emit(args, client.get(f"/v1/lists/{_q(args.id)}"))
    elif args.action == "import":
        return _import(args, client)
    elif args.action == "delete":
        emit(
            args,
            client.request("DELETE", f"/v1/lists/{_q(args.id)}").json(),
            lambda d: f"list {d['id']} deleted, {d['members_removed']} members removed",
        )
    else:
        emit(args, client.get("/v1/lists"))
    return EXIT_OK


def _import(args: argparse.Namespace, client: Client) -> int:
    data = Path(args.file).read_bytes()
    query = f"?opt_in_source={_q(args.opt_in_source)}" if args.opt_in_source else ""
    started = client.request(
        "POST", f"/v1/lists/{_q(args.id)}/import{query}", raw=data, content_type="text/csv"
    ).json()
    rows = max(0, data.count(b"\n") - 1 + (0 if data.endswith(b"\n") else 1))
    progress = Progress(rows, "importing", sys.stderr, args.progress or sys.stderr.isatty())
    doc = started
    while doc.get("status") == "running":
        progress.update(int(doc.get("imported", 0)) + int(doc.get("rejected", 0)))
        time.sleep(IMPORT_POLL_SECONDS)
        doc = client.get(f"/v1/imports/{_q(started['import_id'])}")
    progress.update(int(doc.get("imported", 0)) + int(doc.get("rejected", 0)))
    progress.close()
    emit(
        args,
        doc,
        lambda d: (
            f"import {d.get('import_id')}: {d.get('status')}, {d.get('imported')} imported,"
            f" {d.get('rejected')} rejected"
        ),
    )
    return EXIT_OK if doc.get("status") == "done" else EXIT_REFUSED


# -- contacts and opt-outs ------------------------------------------------------------------


def _pages(client: Client, path: str, params: dict[str, str], wanted: int | None) -> Any:
    """GET ``path`` page by page (``after``/``next``) until ``wanted`` items (None: all)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        size = MAX_PAGE if wanted is None else min(MAX_PAGE, wanted - len(items))
        query = {**params, "limit": str(size)}
        if cursor is not None:
            query["after"] = cursor
        doc = client.get(f"{path}?{urllib.parse.urlencode(query)}")
        items.extend(doc["items"])
        cursor = doc["next"]
        if cursor is None or (wanted is not None and len(items) >= wanted):
            return {"items": items, "next": cursor}


def _wanted(args: argparse.Namespace) -> int | None:
    if args.all:
        return None
    if args.limit < 1:
        raise CliError("--limit must be 1 or more", EXIT_USAGE)
    return int(args.limit)


def _contact_line(c: dict[str, Any]) -> str:
    attributes = " ".join(f"{k}={v}" for k, v in sorted(c.get("attributes", {}).items()))
    return f"{c.get('number', ''):<16} {c.get('name', '')}  {attributes}".rstrip()


def _attribute_changes(args: argparse.Namespace) -> dict[str, str | None]:
    changes: dict[str, str | None] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--set wants key=value, got {item!r}", EXIT_USAGE)
        changes[key] = value
    for key in args.unset or []:
        changes[key] = None
    return changes


def cmd_contacts(args: argparse.Namespace) -> int:
    client = resolve(args)
    if args.action == "search":
        params = {k: v for k, v in (("q", args.q), ("list_id", args.list)) if v is not None}
        doc = _pages(client, "/v1/contacts", params, _wanted(args))
        emit(args, doc, lambda d: "\n".join(map(_contact_line, d["items"])) or "no contacts")
    elif args.action == "show":
        emit(args, client.get(f"/v1/contacts/{_q(args.number)}"))
    elif args.action == "edit":
        body: dict[str, Any] = {"attributes": _attribute_changes(args)}
        if args.name is not None:
            body["name"] = args.name
        if args.name is None and not body["attributes"]:
            raise CliError("nothing to change: give --name, --set or --unset", EXIT_USAGE)
        changed = client.request("PATCH", f"/v1/contacts/{_q(args.number)}", body).json()
        emit(args, changed, _contact_line)
    else:
        deleted = client.request("DELETE", f"/v1/contacts/{_q(args.number)}").json()
        emit(args, deleted, lambda d: f"contact {d['number']} deleted (its opt-outs stay)")
    return EXIT_OK


def _opt_out_line(o: dict[str, Any]) -> str:
    sender = o.get("sender") or "*"
    return f"{o.get('number', ''):<16} {sender:<11} {o.get('source', ''):<8} {o.get('at', '')}"


def cmd_opt_outs(args: argparse.Namespace) -> int:
    client = resolve(args)
    if args.action == "export":
        query = "?bom=0" if args.no_bom else ""
        data = client.request("GET", f"/v1/opt-outs/export.csv{query}").body
        if args.output == "-":
            args.stdout.write(data.decode("utf-8"))
        else:
            Path(args.output).write_bytes(data)
            rows = max(0, data.count(b"\n") - 1)
            print(f"{rows} opt-outs written to {args.output}", file=sys.stderr)
        return EXIT_OK
    doc = _pages(client, "/v1/opt-outs", {}, _wanted(args))
    emit(args, doc, lambda d: "\n".join(map(_opt_out_line, d["items"])) or "no opt-outs")
    return EXIT_OK


def cmd_interactions(args: argparse.Namespace) -> int:
    """``interactions email``: POST /v1/interactions/email."""
    client = resolve(args)
    body: dict[str, Any] = {"to": args.to}
    for name in ("campaign_id", "number", "source"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    if args.ids is not None:
        try:
            body["ids"] = [int(i) for i in args.ids.split(",")]
        except ValueError:
            raise CliError("--ids wants interaction ids separated by commas", EXIT_USAGE) from None
    sent = client.post("/v1/interactions/email", body)
    emit(
        args,
        sent,
        lambda d: (
            f"{d['rows']} interactions sent to {', '.join(d['to'])}"
            + (" (truncated: export the rest)" if d["truncated"] else "")
        ),
    )
    return EXIT_OK


# -- wiring ---------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="gateway base URL (env SMSGW_URL; default from --config)")
    p.add_argument("--token", help="bearer token (env SMSGW_TOKEN)")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="configuration file")
    p.add_argument("--json", action="store_true", help="print JSON for programs")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")


def add_client_commands(sub: Any) -> None:
    """Add status, send, campaign, list and messages to the ``smsgw`` parser's subcommands."""
    p = sub.add_parser("status", help="binds, queues and rates of a running gateway")
    _common(p)
    p.set_defaults(func=_guarded(cmd_status))

    p = sub.add_parser("send", help="send one message, or a file of them")
    _common(p)
    p.add_argument("--to")
    p.add_argument("--from", dest="sender")
    p.add_argument("--text")
    for name in MESSAGE_FIELDS:
        p.add_argument(
            f"--{name.replace('_', '-')}", dest=name, type=int if name in INT_FIELDS else str
        )
    p.add_argument("--idempotency-key")
    p.add_argument("--file", help="JSON lines or CSV (to,from,text,...) sent in batches")
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="messages per batch")
    p.add_argument("--progress", action="store_true", help="progress bar even when not a tty")
    p.set_defaults(func=_guarded(cmd_send))

    p = sub.add_parser("campaign", help="create and drive campaigns")
    csub = p.add_subparsers(dest="action", required=True)
    c = csub.add_parser("create", help="POST /v1/campaigns")
    _common(c)
    c.add_argument("--body", help="a JSON file with the campaign; flags override its fields")
    c.add_argument("--name")
    c.add_argument("--from", dest="sender")
    c.add_argument("--text", help="template with {name} and {attribute} fields")
    c.add_argument("--template", help="a saved template's id (smsgw template), instead of --text")
    c.add_argument(
        "--list", action="append", help="contact list id, or its name when unique (repeat)"
    )
    c.add_argument("--tag", action="append", help="tag (repeat)")
    c.add_argument("--two-way", action="store_true")
    c.add_argument("--keywords", help="keyword rules as a JSON array")
    c.add_argument("--courtesy-reply")
    c.add_argument("--reply-window-days", type=int)
    c.add_argument("--start-at", help="ISO 8601 time")
    c.add_argument("--send-window", help="HH:MM-HH:MM@Time/Zone, or HH:MM-HH:MM@recipient_local")
    c.add_argument("--tps", type=float)
    c.add_argument("--digest-to", action="append", help="digest e-mail address (repeat)")
    c.add_argument("--digest-days", type=int, default=10)
    c.set_defaults(func=_guarded(cmd_campaign))
    c = csub.add_parser("list", help="GET /v1/campaigns")
    _common(c)
    c.set_defaults(func=_guarded(cmd_campaign))
    for action in ("show", "start", "pause", "resume", "cancel", "stats"):
        c = csub.add_parser(action, help=f"{action} one campaign")
        _common(c)
        c.add_argument("id")
        c.set_defaults(func=_guarded(cmd_campaign))
    c = csub.add_parser("send-to-responders", help="new campaign to those who replied")
    _common(c)
    c.add_argument("id")
    c.add_argument("--text", required=True)
    c.add_argument("--name")
    c.add_argument("--keyword")
    c.add_argument(
        "--clicked", action="store_true", help="to those who clicked its short links instead"
    )
    c.set_defaults(func=_guarded(cmd_campaign))

    p = sub.add_parser("template", help="saved message templates and their preview")
    tsub = p.add_subparsers(dest="action", required=True)
    for action, what in (("create", "POST"), ("update", "PUT")):
        c = tsub.add_parser(action, help=f"{what} /v1/templates")
        _common(c)
        if action == "update":
            c.add_argument("id")
        c.add_argument("--name", required=True)
        c.add_argument("--text", required=True, help="with {name} and {attribute} fields")
        c.set_defaults(func=_guarded(cmd_template))
    c = tsub.add_parser("list", help="GET /v1/templates")
    _common(c)
    c.set_defaults(func=_guarded(cmd_template))
    for action in ("show", "delete"):
        c = tsub.add_parser(action, help=f"{action} one template")
        _common(c)
        c.add_argument("id")
        c.set_defaults(func=_guarded(cmd_template))
    c = tsub.add_parser("preview", help="render for a contact; the longest across lists")
    _common(c)
    c.add_argument("id")
    c.add_argument("--contact", help="a number whose stored fields are used")
    c.add_argument(
        "--list", action="append", help="contact list id, or its name when unique (repeat)"
    )
    c.set_defaults(func=_guarded(cmd_template))

    p = sub.add_parser("messages", help="list and search messages")
    msub = p.add_subparsers(dest="action", required=True)
    c = msub.add_parser("list", help="GET /v1/messages, newest first")
    _common(c)
    for name in MESSAGE_FILTERS:
        c.add_argument(f"--{name.replace('_', '-')}", dest=name)
    c.add_argument("--order", choices=("desc", "asc"), default="desc")
    c.add_argument("--limit", type=int, default=100, help="messages to show (default 100)")
    c.add_argument("--all", action="store_true", help="every matching message, page by page")
    c.set_defaults(func=_guarded(cmd_messages))

    p = sub.add_parser("list", help="contact lists: create, show, import a CSV")
    lsub = p.add_subparsers(dest="action", required=True)
    c = lsub.add_parser("create")
    _common(c)
    c.add_argument("name")
    c.set_defaults(func=_guarded(cmd_list))
    c = lsub.add_parser("all", help="GET /v1/lists")
    _common(c)
    c.set_defaults(func=_guarded(cmd_list))
    c = lsub.add_parser("show")
    _common(c)
    c.add_argument("id")
    c.set_defaults(func=_guarded(cmd_list))
    c = lsub.add_parser("import", help="import a CSV (header row, a 'number' column)")
    _common(c)
    c.add_argument("id")
    c.add_argument("file")
    c.add_argument("--opt-in-source")
    c.add_argument("--progress", action="store_true", help="progress bar even when not a tty")
    c.set_defaults(func=_guarded(cmd_list))
    c = lsub.add_parser("delete", help="DELETE /v1/lists/ID: the list and its memberships")
    _common(c)
    c.add_argument("id")
    c.set_defaults(func=_guarded(cmd_list))

    p = sub.add_parser("contacts", help="search, show, edit and delete contacts")
    ksub = p.add_subparsers(dest="action", required=True)
    c = ksub.add_parser("search", help="GET /v1/contacts: by name or digits of the number")
    _common(c)
    c.add_argument("q", nargs="?", help="part of the name, or digits of the number")
    c.add_argument("--list", help="only the members of this list id")
    c.add_argument("--limit", type=int, default=100, help="contacts to show (default 100)")
    c.add_argument("--all", action="store_true", help="every match, page by page")
    c.set_defaults(func=_guarded(cmd_contacts))
    c = ksub.add_parser("show", help="GET /v1/contacts/NUMBER")
    _common(c)
    c.add_argument("number")
    c.set_defaults(func=_guarded(cmd_contacts))
    c = ksub.add_parser("edit", help="PATCH /v1/contacts/NUMBER")
    _common(c)
    c.add_argument("number")
    c.add_argument("--name")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="attribute (repeat)")
    c.add_argument("--unset", action="append", metavar="KEY", help="remove attribute (repeat)")
    c.set_defaults(func=_guarded(cmd_contacts))
    c = ksub.add_parser("delete", help="DELETE /v1/contacts/NUMBER (opt-outs stay)")
    _common(c)
    c.add_argument("number")
    c.set_defaults(func=_guarded(cmd_contacts))

    p = sub.add_parser("interactions", help="the MO log: e-mail a selection as CSV")
    isub = p.add_subparsers(dest="action", required=True)
    c = isub.add_parser("email", help="POST /v1/interactions/email (the digest's SMTP settings)")
    _common(c)
    c.add_argument("--to", action="append", required=True, help="e-mail address (repeat, <= 5)")
    c.add_argument("--campaign-id", dest="campaign_id")
    c.add_argument("--number", help="ours: the MO's destination")
    c.add_argument("--source", help="the subscriber")
    c.add_argument("--ids", help="interaction ids, comma-separated")
    c.set_defaults(func=_guarded(cmd_interactions))

    p = sub.add_parser("opt-outs", help="list and export opt-outs")
    osub = p.add_subparsers(dest="action", required=True)
    c = osub.add_parser("list", help="GET /v1/opt-outs")
    _common(c)
    c.add_argument("--limit", type=int, default=100, help="opt-outs to show (default 100)")
    c.add_argument("--all", action="store_true", help="every one, page by page")
    c.set_defaults(func=_guarded(cmd_opt_outs))
    c = osub.add_parser("export", help="GET /v1/opt-outs/export.csv")
    _common(c)
    c.add_argument("--output", "-o", default="-", help="file to write (default stdout)")
    c.add_argument("--no-bom", action="store_true", help="no UTF-8 byte order mark")
    c.set_defaults(func=_guarded(cmd_opt_outs))


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        if not hasattr(args, "stdout"):
            args.stdout = sys.stdout
        try:
            return func(args)
        except CliError as exc:
            if args.json and exc.body is not None:
                args.stdout.write(json.dumps(exc.body) + "\n")
            print(f"smsgw: {exc}", file=sys.stderr)
            return exc.code

    return run
