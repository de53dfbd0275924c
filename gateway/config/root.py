"""The whole tree: :class:`GatewayConfig`, and :func:`load_config` that reads it."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from gateway.config.callbacks import CallbacksConfig
from gateway.config.carriers import CarrierConfig
from gateway.config.cluster import ClusterConfig
from gateway.config.common import _unique
from gateway.config.compliance import ComplianceConfig
from gateway.config.digest import DigestConfig
from gateway.config.front import FrontConfig
from gateway.config.http import HttpConfig, hash_token
from gateway.config.inbound import InboundConfig
from gateway.config.links import LinksConfig
from gateway.config.loader import ConfigError, check, load_toml
from gateway.config.log import LogConfig
from gateway.config.messages import MessagesConfig, RouteConfig
from gateway.config.node import NodeConfig
from gateway.config.shutdown import ShutdownConfig
from gateway.config.store import RetentionConfig, StoreConfig
from gateway.signing import WEBHOOK_SIGNER

KNOWN_TOKENS: Final = ("dev-token-change-me",)
"""HTTP tokens whose clear text this repository publishes (conf/gateway.toml, README.md):
anyone can call an API that accepts one."""

KNOWN_FRONT_PASSWORDS: Final = ("crmpass",)
"""Upstream account passwords published in conf/gateway.toml (the ``crm`` account)."""


def known_credentials(config: GatewayConfig) -> list[str]:
    """One error per credential of ``config`` published in this repository, unless
    ``[node] development`` says this is a development machine."""
    if config.node.development:
        return []
    from gateway.front.passwords import verify_password

    advice = (
        "refused outside development: make a new one (see conf/gateway.toml), or set"
        " [node] development = true on a development machine"
    )
    known = {hash_token(token): token for token in KNOWN_TOKENS}
    errors = [
        f"http.tokens[{i}].sha256: the token {known[t.sha256]!r} published in this"
        f" repository; {advice}"
        for i, t in enumerate(config.http.tokens)
        if t.sha256 in known
    ]
    if config.front is not None:
        for i, account in enumerate(config.front.accounts):
            for password in KNOWN_FRONT_PASSWORDS:
                if verify_password(password, account.password_hash):
                    errors.append(
                        f"front.accounts[{i}].password_hash: the password {password!r} published"
                        f" in this repository; {advice}"
                    )
    return errors


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """The whole configuration of one gateway process."""

    node: NodeConfig
    http: HttpConfig
    log: LogConfig
    store: StoreConfig
    carriers: tuple[CarrierConfig, ...] = field(
        metadata=check(lambda v: None if v else "at least one carrier is required")
    )
    messages: MessagesConfig = field(default_factory=MessagesConfig)
    routes: tuple[RouteConfig, ...] = ()
    """Optional: without routes, every destination goes to every carrier in equal shares."""
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    """Optional: SIGTERM drain policy."""
    front: FrontConfig | None = None
    """Optional ``[front]``: the SMPP server for upstream ESMEs (gateway.front)."""
    inbound: InboundConfig = field(default_factory=InboundConfig)
    """Optional: MO handling (see InboundConfig)."""
    digest: DigestConfig | None = None
    """Optional: the daily campaign digest by e-mail (see DigestConfig); none without it."""
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    """Optional: see CallbacksConfig for what holds when the section is left out."""
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    """Optional: how long finished records are kept (see RetentionConfig)."""
    links: LinksConfig | None = None
    """Optional ``[links]``: short links with click tracking in campaigns (gateway.links)."""
    compliance: ComplianceConfig = field(default_factory=ComplianceConfig)
    """Optional: see ComplianceConfig (no gateway-wide quiet hours without it)."""
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """Optional: see ClusterConfig (bind-slot leases of ``lease_seconds``)."""

    def validate(self) -> list[str]:
        errors = _unique(self.carriers, "name", "carriers")
        names = {c.name for c in self.carriers}
        for i, route in enumerate(self.routes):
            errors.extend(
                f"routes[{i}].carriers: unknown carrier {name!r}"
                for name in route.carriers
                if name not in names
            )
        errors.extend(self._webhooks_outside_the_allow_list())
        errors.extend(known_credentials(self))
        return errors

    def _webhooks_outside_the_allow_list(self) -> list[str]:
        """Webhook actions go through the callback outbox, so [callbacks] applies to them:
        say so at load rather than park every MO's webhook at run time."""
        from gateway.callback_policy import CallbackPolicy

        try:
            policy = CallbackPolicy.from_config(self.callbacks)
        except ValueError:
            return []  # a bad CIDR is reported on callbacks.allowed_networks
        errors = []
        for i, number in enumerate(self.inbound.numbers):
            for r, rule in enumerate(number.rules):
                for a, action in enumerate(rule.actions):
                    if action.type == "webhook" and action.url:
                        refusal = policy.url_refusal(action.url)
                        if refusal is not None:
                            errors.append(
                                f"inbound.numbers[{i}].rules[{r}].actions[{a}].url: {refusal}"
                                " ([callbacks] applies to webhooks)"
                            )
        return errors

    def signing_secrets(self) -> dict[str, tuple[str, ...]]:
        """Signer name (an account, or WEBHOOK_SIGNER for webhook actions) to its secrets."""
        found = self.http.signing_secrets()
        if self.inbound.webhook_signing_secrets:
            found[WEBHOOK_SIGNER] = self.inbound.webhook_signing_secrets
        return found

    @property
    def store_path(self) -> Path:
        """The database file: ``store.path`` against ``node.data_dir``."""
        return self.node.data_path / self.store.path

    def carrier(self, name: str) -> CarrierConfig:
        """The carrier called ``name``; KeyError when there is none."""
        for carrier in self.carriers:
            if carrier.name == name:
                return carrier
        raise KeyError(name)

    def resolve_paths(self, config_file: Path) -> GatewayConfig:
        """This configuration with ``node.data_dir`` made absolute against the directory of
        ``config_file``. An absolute data_dir is only normalised."""
        base = Path(os.path.abspath(config_file)).parent
        data_dir = os.path.normpath(base / self.node.data_dir)
        return dataclasses.replace(
            self,
            node=dataclasses.replace(self.node, data_dir=data_dir),
            carriers=tuple(c.with_paths_from(str(base)) for c in self.carriers),
        )

    def file_errors(self) -> list[str]:
        """Problems with the files the configuration names (the carriers' TLS files)."""
        return [
            f"carriers[{n}].{error}"
            for n, carrier in enumerate(self.carriers)
            for error in carrier.tls_file_errors()
        ]


def load_config(path: Path) -> GatewayConfig:
    """Read and check a gateway configuration file, with ``node.data_dir`` and the carriers'
    TLS files made absolute, and those files checked.

    Raises :class:`ConfigError` listing every problem found (``source`` is ``path``).
    """
    config = load_toml(GatewayConfig, path).resolve_paths(path)
    errors = config.file_errors()
    if errors:
        raise ConfigError(errors, path)
    return config
