"""``[log]``: what the gateway logs and how."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """``[log]``."""

    level: LogLevel = "info"
    format: LogFormat = "text"
    """``text`` for people, ``json`` (one object per line) for collectors."""
