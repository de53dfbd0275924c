"""HTTP requests counted by route, method and status class, with a latency histogram per
route (by the request middleware, gateway.http.pipeline); ``gateway.app.observe`` shows them
at ``GET /metrics``."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.metrics import Histogram


@dataclass(slots=True)
class HttpMetrics:
    requests: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(route, method, status class "2xx") -> count."""
    latency: dict[str, Histogram] = field(default_factory=dict)
    """route -> seconds."""

    def histogram(self, route: str) -> Histogram:
        """The latency histogram of ``route`` (made at its first request)."""
        hist = self.latency.get(route)
        if hist is None:
            hist = self.latency[route] = Histogram()
        return hist

    def count(self, route: str, method: str, status: int) -> None:
        """One request answered with ``status`` (counted by its class, "2xx")."""
        n = status // 100
        key = (route, method, _STATUS_CLASSES[n] if 0 <= n < 10 else f"{n}xx")
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1


_STATUS_CLASSES = tuple(f"{n}xx" for n in range(10))
"""status // 100 -> its class label, made once (not an f-string per request)."""
