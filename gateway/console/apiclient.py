"""The console's way to the HTTP API: real requests, with the signed-in token.

Each call goes to the address and port the browser's request came in on (this gateway's
own HTTP listener), with ``Authorization: Bearer <the session's token>``: the same
middlewares, scope checks, account checks, validation and metrics as any client, so nothing
the API refuses is possible in the console.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from aiohttp import web

TIMEOUT_SECONDS: Final = 30.0
"""As long as the API's own body timeout: a page waits no longer for its data."""


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    status: int
    body: Any
    """The decoded JSON, or None when the answer was not JSON."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_message(self) -> str:
        """The API's own sentence for a refusal (``error.message``)."""
        if isinstance(self.body, dict):
            error = self.body.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                return str(error["message"])
        return f"the API answered {self.status}"


def path(template: str, **values: str) -> str:
    """``/v1/messages/{id}`` with each value percent-encoded as one path segment."""
    return template.format(**{k: quote(v, safe="") for k, v in values.items()})


class ApiClient:
    """One connection pool for every session; started and closed with the app."""

    def __init__(self) -> None:
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _pool(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
                # The console's own calls: never a proxy from the environment.
                trust_env=False,
            )
        return self._http

    async def call(
        self,
        request: web.Request,
        token: str,
        method: str,
        api_path: str,
        json_body: Any = None,
        *,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> ApiAnswer:
        url = f"{_base_url(request)}{api_path}"
        headers = {"Authorization": f"Bearer {token}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        sent: dict[str, Any] = {"data": data} if data is not None else {"json": json_body}
        async with self._pool().request(method, url, headers=headers, **sent) as r:
            raw = await r.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            return ApiAnswer(r.status, body)

    async def relay(self, request: web.Request, token: str, api_path: str) -> web.StreamResponse:
        """GET ``api_path`` and pass its answer on to the browser as it comes (a CSV export:
        never held in memory), with its status, type and file name."""
        url = f"{_base_url(request)}{api_path}"
        async with self._pool().get(
            url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=TIMEOUT_SECONDS),
        ) as r:
            headers = {"Cache-Control": "no-store"}
            for name in ("Content-Type", "Content-Disposition"):
                if name in r.headers:
                    headers[name] = r.headers[name]
            response = web.StreamResponse(status=r.status, headers=headers)
            await response.prepare(request)
            async for chunk in r.content.iter_chunked(1 << 16):
                await response.write(chunk)
            await response.write_eof()
            return response


def _base_url(request: web.Request) -> str:
    """``http://host:port`` of the listener this request arrived on."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not isinstance(sockname, tuple) or len(sockname) < 2:
        raise web.HTTPServiceUnavailable(text="the console cannot reach the API listener")
    host, port = str(sockname[0]), int(sockname[1])
    if ":" in host:  # IPv6
        host = f"[{host.split('%')[0]}]"
    return f"http://{host}:{port}"
