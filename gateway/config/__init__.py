"""The gateway's configuration: one frozen dataclass tree, loaded and checked once.

``load_config(path)`` reads a TOML file through :mod:`gateway.config.loader`: every missing
key, unknown key (typos included), wrong type, value out of range and cross-field conflict is
collected, each with its key path, into one :class:`~gateway.config.loader.ConfigError`, and
the daemon refuses to start. Nothing is half-loaded.

One module per section: :mod:`.node`, :mod:`.http` (and its tokens), :mod:`.log`,
:mod:`.store` (and ``[retention]``), :mod:`.carriers`, :mod:`.messages` (and ``[[routes]]``),
:mod:`.callbacks`, :mod:`.compliance`, :mod:`.shutdown`, :mod:`.front`, :mod:`.inbound`,
:mod:`.digest`, :mod:`.links`, :mod:`.cluster`; :mod:`.common` holds what several share,
:mod:`.root` the whole tree (:class:`GatewayConfig`, :func:`load_config`) and
:mod:`.loader` the loader (TOML or a mapping to a dataclass tree, every error at once). A
new section is a module here, a field of ``GatewayConfig`` and, when other packages use its
names, a line below.

Every section must be present in the file: ``[node]``, ``[http]`` (with at least one
``[[http.tokens]]``), ``[log]``, ``[store]`` and at least one ``[[carriers]]``. Keys inside a
section may be left out where a default is documented below; ``node.data_dir`` and a
carrier's ``name``, ``host``, ``port``, ``system_id`` and ``password`` have none.

Relative paths: ``node.data_dir`` and a carrier's TLS files (``tls_ca_file``, ``tls_cert``,
``tls_key``) are relative to the directory of the configuration file (``load_config`` makes
them absolute, and checks that the TLS files load), and ``store.path`` is relative to
``node.data_dir``.

Secrets: a carrier's password and a token's hash never appear in ``repr()``/``str()``. HTTP
bearer tokens are stored as SHA-256 hex digests only; :func:`hash_token` computes one.
"""

from __future__ import annotations

from gateway.config.callbacks import CallbacksConfig
from gateway.config.carriers import CarrierConfig
from gateway.config.cluster import ClusterConfig
from gateway.config.common import DAY
from gateway.config.compliance import ComplianceConfig
from gateway.config.digest import DigestConfig, SmtpConfig
from gateway.config.front import FrontAccountConfig, FrontConfig
from gateway.config.http import SCOPES, HttpConfig, Scope, TokenConfig, hash_token
from gateway.config.inbound import (
    InboundActionConfig,
    InboundActionType,
    InboundConfig,
    InboundNumberConfig,
    KeywordRuleConfig,
)
from gateway.config.links import LinksConfig
from gateway.config.loader import ConfigError
from gateway.config.log import LogConfig
from gateway.config.messages import MessagesConfig, RetryRule, RouteConfig
from gateway.config.node import NodeConfig
from gateway.config.root import (
    KNOWN_FRONT_PASSWORDS,
    KNOWN_TOKENS,
    GatewayConfig,
    known_credentials,
    load_config,
)
from gateway.config.shutdown import ShutdownConfig
from gateway.config.store import RetentionConfig, StoreConfig
from gateway.smpp.receipt import IdForm

__all__ = [
    "DAY",
    "KNOWN_FRONT_PASSWORDS",
    "KNOWN_TOKENS",
    "SCOPES",
    "CallbacksConfig",
    "CarrierConfig",
    "ClusterConfig",
    "ComplianceConfig",
    "ConfigError",
    "DigestConfig",
    "FrontAccountConfig",
    "FrontConfig",
    "GatewayConfig",
    "HttpConfig",
    "IdForm",
    "InboundActionConfig",
    "InboundActionType",
    "InboundConfig",
    "InboundNumberConfig",
    "KeywordRuleConfig",
    "LinksConfig",
    "LogConfig",
    "MessagesConfig",
    "NodeConfig",
    "RetentionConfig",
    "RetryRule",
    "RouteConfig",
    "Scope",
    "ShutdownConfig",
    "SmtpConfig",
    "StoreConfig",
    "TokenConfig",
    "hash_token",
    "known_credentials",
    "load_config",
]
