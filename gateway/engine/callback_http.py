"""HTTP/1.1 for the callback client, without I/O: a request as bytes, a response read.

The callback sender needs little of HTTP: one POST of a JSON body, and of the answer its
status and whether the connection can carry the next request. So this reads a response's
status line and the three headers that frame it (``Content-Length``,
``Transfer-Encoding``, ``Connection``), skips the body, and says when the response is over.
Everything else (other headers, the body's text) is ignored; nothing is kept but counters.

Bytes in, one :class:`Response` out (h11's shape, narrowed): no sockets, no asyncio, no
logging. A response that breaks the rules (garbage, a head past :data:`MAX_HEAD_BYTES`,
conflicting lengths, a bad chunk) raises :class:`ResponseError`: the caller closes the
connection and counts the attempt as failed, like any unreachable receiver.

A response whose end this reader would have to wait for without need is finished at its
head instead, with ``keep_alive`` False (the caller closes the connection): a body framed by
the connection's close, a ``Content-Length`` past :data:`MAX_BODY_BYTES`, a chunked body
growing past it. The status is all the sender uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

MAX_HEAD_BYTES: Final = 16 * 1024
"""Status line and headers of a response, in bytes: twice what common servers send at
most (nginx's large_client_header_buffers, 8 KiB); past it the receiver is misbehaving."""

MAX_HEADERS: Final = 100
"""Header lines in one response head (aiohttp's and h11's order of magnitude)."""

MAX_BODY_BYTES: Final = 64 * 1024
"""Body bytes read and dropped to keep a connection for the next request; a longer body
(an HTML error page, say) ends the response at its head and the connection is closed."""

MAX_CHUNK_LINE: Final = 1024
"""A chunk-size line with its extensions."""

MAX_INTERIM: Final = 8
"""1xx responses before the final one (100 Continue, 103 Early Hints): more is a loop."""


class ResponseError(ValueError):
    """The receiver's bytes are no HTTP/1.1 response this reader accepts."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    keep_alive: bool
    """The connection may carry another request: HTTP/1.1, no ``Connection: close``, the
    body read to its end and no byte after it."""


def request_head(prefix: bytes, length: int, headers: Sequence[tuple[str, str]]) -> bytes:
    """The head of a request: ``prefix`` (its request line and fixed headers, each ending
    in CRLF), ``Content-Length: length`` and ``headers``. A name or value holding CR or LF,
    or a name holding a colon, is a ``ValueError`` (no header injection from a stored
    value)."""
    parts = [prefix, b"Content-Length: %d\r\n" % length]
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name!r} holds a line break, or a colon in its name")
        parts.append(f"{name}: {value}\r\n".encode("latin-1"))
    parts.append(b"\r\n")
    return b"".join(parts)


_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS = range(6)


class ResponseReader:
    """Reads one response (after any 1xx ones). ``feed`` the bytes as they come; it returns
    the :class:`Response` once the response is over, None while it needs more."""

    __slots__ = ("_body", "_buf", "_interim", "_keep_alive", "_remaining", "_state", "_status")

    def __init__(self) -> None:
        self._buf = b""
        self._state = _HEAD
        self._remaining = 0
        self._body = 0
        self._status = 0
        self._keep_alive = False
        self._interim = 0

    def feed(self, data: bytes) -> Response | None:
        buf = self._buf + data if self._buf else data
        self._buf = b""
        while True:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise ResponseError(f"response head over {MAX_HEAD_BYTES} bytes")
                    self._buf = buf
                    return None
                if end > MAX_HEAD_BYTES:
                    raise ResponseError(f"response head over {MAX_HEAD_BYTES} bytes")
                head, buf = buf[:end], buf[end + 4 :]
                done = self._head(head)
                if done is not None:
                    return done
                if self._state == _HEAD:  # a 1xx: the final head follows
                    continue
            elif state == _LENGTH:
                if len(buf) < self._remaining:
                    self._remaining -= len(buf)
                    return None
                buf = buf[self._remaining :]
                return self._end(buf)
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_CHUNK_LINE:
                        raise ResponseError("chunk size line too long")
                    self._buf = buf
                    return None
                size = _chunk_size(buf[:end])
                buf = buf[end + 2 :]
                self._body += size
                if size == 0:
                    self._state = _TRAILERS
                elif self._body > MAX_BODY_BYTES:
                    return Response(self._status, False)
                else:
                    self._remaining = size
                    self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                if len(buf) < self._remaining:
                    self._remaining -= len(buf)
                    return None
                buf = buf[self._remaining :]
                self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    self._buf = buf
                    return None
                if buf[:2] != b"\r\n":
                    raise ResponseError("chunk data not followed by CRLF")
                buf = buf[2:]
                self._state = _CHUNK_SIZE
            else:  # _TRAILERS: lines up to an empty one
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise ResponseError("trailers too long")
                    self._buf = buf
                    return None
                line, buf = buf[:end], buf[end + 2 :]
                if not line:
                    return self._end(buf)

    def _end(self, rest: bytes) -> Response:
        # A byte after the response was never asked for: the connection is not reused.
        return Response(self._status, self._keep_alive and not rest)

    def _head(self, head: bytes) -> Response | None:
        """Reads a head; the Response when the response ends with it, else None with the
        state set for the body (or for the next head after a 1xx)."""
        lines = head.split(b"\r\n")
        status_line = lines[0]
        if len(lines) > MAX_HEADERS + 1:
            raise ResponseError(f"more than {MAX_HEADERS} header lines")
        version, _, rest = status_line.partition(b" ")
        if version == b"HTTP/1.1":
            http11 = True
        elif version == b"HTTP/1.0":
            http11 = False
        else:
            raise ResponseError(f"not an HTTP/1.x status line: {_show(status_line)}")
        code = rest[:3]
        if len(code) != 3 or not code.isdigit() or rest[3:4] not in (b"", b" "):
            raise ResponseError(f"bad status code: {_show(status_line)}")
        status = int(code)
        if status < 100:
            raise ResponseError(f"bad status code: {_show(status_line)}")
        length: int | None = None
        chunked = False
        framed_by_te = False
        close = not http11
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or b" " in name:
                raise ResponseError(f"bad header line: {_show(line)}")
            key = name.lower()
            if key == b"content-length":
                value = value.strip()
                if not value.isdigit() or len(value) > 18:
                    raise ResponseError(f"bad Content-Length: {_show(value)}")
                if length is not None and length != int(value):
                    raise ResponseError("two different Content-Length values")
                length = int(value)
            elif key == b"transfer-encoding":
                framed_by_te = True
                codings = [c.strip().lower() for c in value.split(b",")]
                chunked = codings[-1] == b"chunked"
            elif key == b"connection":
                tokens = [t.strip().lower() for t in value.split(b",")]
                if b"close" in tokens:
                    close = True
                elif not http11 and b"keep-alive" in tokens:
                    close = False
        if status < 200:
            if status == 101:
                raise ResponseError("101 Switching Protocols to a POST")
            self._interim += 1
            if self._interim > MAX_INTERIM:
                raise ResponseError(f"more than {MAX_INTERIM} interim (1xx) responses")
            return None  # 1xx: no body, the final response follows
        self._status = status
        self._keep_alive = not close
        if status in (204, 304):
            return self._end(b"") if not framed_by_te and not length else Response(status, False)
        if framed_by_te:
            # Both headers: Transfer-Encoding wins (RFC 9112 6.3) and the connection is not
            # trusted with another request (a smuggling shape).
            if length is not None:
                self._keep_alive = False
            if not chunked:
                return Response(status, False)  # framed by the close: not waited for
            self._state = _CHUNK_SIZE
            return None
        if length is None:
            return Response(status, False)  # body until the close: not waited for
        if length > MAX_BODY_BYTES:
            return Response(status, False)
        if length == 0:
            return self._end(b"")
        self._remaining = length
        self._state = _LENGTH
        return None


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].strip()
    if not size or len(size) > 16 or size.strip(_HEX):
        raise ResponseError(f"bad chunk size: {_show(line)}")
    return int(size, 16)


_HEX: Final = b"0123456789abcdefABCDEF"


def _show(data: bytes) -> str:
    """A few bytes of a bad line for an error text (which is logged and stored)."""
    return repr(data[:40])
