"""MT routing: destination prefix -> carriers, with weights and failover.

The longest matching prefix wins. Among its carriers, one is drawn by weight from those with
at least one bound bind; when none is bound, the draw is over all of them (the message waits
in that carrier's queue, and is moved again by ``pick`` at dispatch if another comes up).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    carriers: tuple[str, ...]
    weights: tuple[int, ...]


class Router:
    def __init__(
        self,
        routes: Sequence[Route],
        all_carriers: Sequence[str],
        rng: Callable[[], float] | None = None,
    ) -> None:
        if not all_carriers:
            raise ValueError("no carriers to route to")
        self._routes = sorted(routes, key=lambda r: len(r.prefix), reverse=True)
        self._default = Route("", tuple(all_carriers), tuple(1 for _ in all_carriers))
        self._random = rng or random.random
        self._pairs: dict[int, tuple[tuple[str, int], ...]] = {}
        """id of a route of this router -> its (carrier, weight) pairs with a weight, worked
        out once (the routes live as long as the router holds them; ``replace`` clears it)."""

    def replace(self, routes: Sequence[Route], all_carriers: Sequence[str]) -> None:
        """Swap in new rules (SIGHUP reload); everyone holding this router sees them at once."""
        fresh = Router(routes, all_carriers, self._random)
        self._routes, self._default = fresh._routes, fresh._default
        self._pairs = {}

    def route_for(self, to: str) -> Route:
        for route in self._routes:
            if to.startswith(route.prefix):
                return route
        return self._default

    def pick(self, to: str, up: Container[str] = ()) -> str:
        """The carrier for one message: weighted among the route's carriers that are up,
        or among all of them when none is."""
        route = self.route_for(to)
        pairs = self._pairs.get(id(route))
        if pairs is None:
            weights = route.weights or tuple(1 for _ in route.carriers)
            pairs = tuple((c, w) for c, w in zip(route.carriers, weights, strict=True) if w > 0)
            self._pairs[id(route)] = pairs
        if len(pairs) == 1:  # one carrier: it is the answer, up or not (intake's hot path)
            return pairs[0][0]
        live = [(c, w) for c, w in pairs if c in up]
        choice = live or pairs
        if len(choice) == 1:
            return choice[0][0]
        total = sum(w for _, w in choice)
        point = self._random() * total
        for carrier, weight in choice:
            point -= weight
            if point < 0:
                return carrier
        return choice[-1][0]
