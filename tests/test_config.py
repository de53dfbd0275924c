"""The gateway configuration and the generic loader under it (gateway.config.loader)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import tomllib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import pytest

from gateway.app.cli import main
from gateway.config import (
    CarrierConfig,
    GatewayConfig,
    IdForm,
    TokenConfig,
    hash_token,
    load_config,
)
from gateway.config import http as config_http
from gateway.config.loader import ConfigError, check, in_range, load_dataclass, load_toml

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "conf" / "gateway.toml"

TOKEN = "test-token"

MINIMAL_TOML = f"""
[node]
data_dir = "data"

[http]
[[http.tokens]]
name = "ops"
sha256 = "{hash_token(TOKEN)}"

[log]

[store]

[[carriers]]
name = "acme"
host = "smsc.example.net"
port = 2775
system_id = "gw"
password = "pw"
"""
MINIMAL: dict[str, Any] = tomllib.loads(MINIMAL_TOML)


def data(**changes: Any) -> dict[str, Any]:
    """A deep copy of MINIMAL with ``changes`` applied; keys are dotted paths, ``[n]`` index
    into arrays, and the value ``DELETE`` removes the key."""
    out = copy.deepcopy(MINIMAL)
    for dotted, value in changes.items():
        node: Any = out
        *parents, last = dotted.replace("[", ".").replace("]", "").split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return out


DELETE = object()


def errors_of(mapping: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_dataclass(GatewayConfig, mapping)
    return info.value.errors


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- the shipped file ---------------------------------------------------------------------


def test_shipped_config_loads_and_targets_the_simulator() -> None:
    config = load_config(SHIPPED)
    assert config.node.data_dir == str(REPO / "var")
    assert config.store_path == REPO / "var" / "smsgw.db"
    assert (config.http.host, config.http.port) == ("127.0.0.1", 8775)
    assert [t.name for t in config.http.tokens] == ["dev"]
    assert config.http.tokens[0].matches("dev-token-change-me")
    [sim] = config.carriers
    assert (sim.name, sim.host, sim.port) == ("sim", "127.0.0.1", 2775)
    assert (sim.system_id, sim.password) == ("smsgw", "secret")
    assert (sim.bind_type, sim.binds, sim.window) == ("trx", 2, 50)


def test_shipped_config_accounts_for_every_simulator_login() -> None:
    simulator = tomllib.loads((REPO / "conf" / "simulator.toml").read_text())
    accounts = {(a["system_id"], a["password"]) for a in simulator["accounts"]}
    sim = load_config(SHIPPED).carrier("sim")
    assert (sim.system_id, sim.password) in accounts
    assert simulator["smpp"]["port"] == sim.port


def test_cluster_section_defaults_to_a_ten_second_lease_and_checks_its_keys() -> None:
    assert load_dataclass(GatewayConfig, MINIMAL).cluster.lease_seconds == 10.0
    config = load_dataclass(GatewayConfig, {**MINIMAL, "cluster": {"lease_seconds": 4}})
    assert config.cluster.lease_seconds == 4.0
    errors = errors_of({**MINIMAL, "cluster": {"lease_seconds": 0.5, "lease": 3}})
    assert sorted(str(e) for e in errors) == [
        "cluster.lease: unknown key",
        "cluster.lease_seconds: must be 1..3600, got 0.5",
    ]
    assert [str(e) for e in errors_of({**MINIMAL, "cluster": {"lease_seconds": "ten"}})] == [
        "cluster.lease_seconds: expected float, got str"
    ]


# -- defaults -----------------------------------------------------------------------------


def test_minimal_config_takes_the_documented_defaults() -> None:
    config = load_dataclass(GatewayConfig, MINIMAL)
    assert config.node.id == "smsgw-1"
    assert config.node.time_zone == "UTC"
    assert (config.http.host, config.http.port) == ("127.0.0.1", 8775)
    assert config.http.max_body_bytes == 16 * 1024 * 1024
    assert (config.log.level, config.log.format) == ("info", "text")
    assert (config.store.backend, config.store.path) == ("sqlite", "smsgw.db")
    carrier = config.carriers[0]
    assert carrier == CarrierConfig(
        name="acme", host="smsc.example.net", port=2775, system_id="gw", password="pw"
    )
    assert (carrier.bind_type, carrier.binds, carrier.window) == ("trx", 1, 10)
    assert (carrier.tps, carrier.account_tps) == (0.0, 0.0)
    assert (carrier.enquire_link_interval, carrier.response_timeout) == (30.0, 60.0)
    assert (carrier.bind_timeout, carrier.reconnect_initial) == (30.0, 1.0)
    assert (carrier.reconnect_max, carrier.reconnect_jitter) == (60.0, 0.2)
    assert carrier.message_id_form is IdForm.AUTO and carrier.receipt_id_form is None
    assert (carrier.addr_ton, carrier.addr_npi, carrier.address_range) == (0, 0, "")
    assert (carrier.source_ton, carrier.source_npi) == (None, None)
    assert (carrier.dest_ton, carrier.dest_npi) == (1, 1)
    assert (carrier.gsm7_packed, carrier.latin1, carrier.concat) == (False, False, "udh8")
    assert (carrier.registered_delivery, carrier.interface_version) == (1, 0x34)


def test_receipt_id_form_follows_message_id_form_unless_set() -> None:
    same = load_dataclass(GatewayConfig, data(**{"carriers[0].message_id_form": "hex"}))
    assert same.carriers[0].effective_receipt_id_form is IdForm.HEX
    own = load_dataclass(
        GatewayConfig,
        data(**{"carriers[0].message_id_form": "hex", "carriers[0].receipt_id_form": "decimal"}),
    )
    assert own.carriers[0].effective_receipt_id_form is IdForm.DECIMAL


def test_int_is_accepted_where_a_float_is_expected() -> None:
    config = load_dataclass(GatewayConfig, data(**{"carriers[0].tps": 5}))
    assert config.carriers[0].tps == 5.0 and isinstance(config.carriers[0].tps, float)


# -- every kind of error, with its key path -----------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # missing required keys and sections
        ({"carriers[0].password": DELETE}, "carriers[0].password: missing required key"),
        ({"node.data_dir": DELETE}, "node.data_dir: missing required key"),
        ({"node": DELETE}, "node: missing required key"),
        ({"log": DELETE}, "log: missing required key"),
        ({"http.tokens": DELETE}, "http.tokens: missing required key"),
        ({"carriers": DELETE}, "carriers: missing required key"),
        # unknown keys: typos are caught, with a suggestion
        ({"carriers[0].windw": 5}, "carriers[0].windw: unknown key (did you mean 'window'?)"),
        ({"http.prot": 1}, "http.prot: unknown key (did you mean 'port'?)"),
        ({"metrics": {}}, "metrics: unknown key"),
        # wrong types; bool and int are never confused
        ({"carriers[0].window": "10"}, "carriers[0].window: expected int, got str"),
        ({"carriers[0].window": True}, "carriers[0].window: expected int, got bool"),
        ({"carriers[0].window": 1.5}, "carriers[0].window: expected int, got float"),
        ({"carriers[0].gsm7_packed": 1}, "carriers[0].gsm7_packed: expected bool, got int"),
        ({"carriers[0].tps": True}, "carriers[0].tps: expected float, got bool"),
        ({"carriers[0].tps": float("nan")}, "carriers[0].tps: expected a finite number, got nan"),
        ({"carriers[0].source_ton": "5"}, "carriers[0].source_ton: expected int, got str"),
        ({"node": "x"}, "node: expected table, got str"),
        ({"carriers": {"name": "x"}}, "carriers: expected array, got table"),
        ({"carriers[0].host": ["a"]}, "carriers[0].host: expected str, got array"),
        # enum and literal values
        (
            {"carriers[0].message_id_form": "base64"},
            "carriers[0].message_id_form: expected one of 'as_is', 'hex', 'decimal', 'auto',"
            " got 'base64'",
        ),
        (
            {"carriers[0].bind_type": "tr"},
            "carriers[0].bind_type: expected one of 'tx', 'rx', 'trx', got 'tr'",
        ),
        (
            {"log.level": "verbose"},
            "log.level: expected one of 'debug', 'info', 'warning', 'error', got 'verbose'",
        ),
        (
            {"store.backend": "postgres"},
            "store.backend: expected one of 'sqlite', 'postgresql', got 'postgres'",
        ),
        # per-field checks
        ({"carriers[0].window": 0}, "carriers[0].window: must be 1..1000, got 0"),
        ({"carriers[0].window": 1001}, "carriers[0].window: must be 1..1000, got 1001"),
        ({"carriers[0].binds": 0}, "carriers[0].binds: must be at least 1, got 0"),
        ({"carriers[0].tps": -1}, "carriers[0].tps: must be at least 0, got -1"),
        ({"carriers[0].reconnect_jitter": 1.5}, "carriers[0].reconnect_jitter: must be 0..1"),
        ({"carriers[0].response_timeout": 0}, "carriers[0].response_timeout: must be above 0"),
        ({"carriers[0].port": 0}, "carriers[0].port: must be 1..65535, got 0"),
        ({"http.port": 65536}, "http.port: must be 0..65535, got 65536"),
        ({"http.max_body_bytes": 10}, "http.max_body_bytes: must be at least 1024, got 10"),
        ({"carriers[0].name": "Acme A"}, "carriers[0].name: must be lower-case letters"),
        ({"carriers[0].system_id": "x" * 16}, "carriers[0].system_id: must be at most 15"),
        ({"carriers[0].password": "123456789"}, "carriers[0].password: must be at most 8"),
        ({"carriers[0].dest_npi": 2}, "carriers[0].dest_npi: must be a numbering_plan"),
        ({"carriers[0].source_ton": 7}, "carriers[0].source_ton: must be a type_of_number"),
        ({"carriers[0].registered_delivery": 32}, "carriers[0].registered_delivery: must be"),
        ({"carriers[0].interface_version": 0x50}, "carriers[0].interface_version: must be"),
        ({"node.time_zone": "Mars/Olympus"}, "node.time_zone: unknown time zone 'Mars/Olympus'"),
        ({"http.tokens": []}, "http.tokens: at least one token is required"),
        ({"carriers": []}, "carriers: at least one carrier is required"),
        ({"http.tokens[0].sha256": "F" * 64}, "http.tokens[0].sha256: must be 64 lower-case"),
        ({"http.tokens[0].sha256": TOKEN}, "http.tokens[0].sha256: must be 64 lower-case"),
    ],
)
def test_each_error_names_its_key_path(changes: dict[str, Any], expected: str) -> None:
    errors = errors_of(data(**changes))
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors


def test_several_errors_are_all_reported_at_once() -> None:
    mapping = data(
        **{
            "node.data_dir": DELETE,
            "http.port": "8775",
            "log.format": "xml",
            "store.pth": "x.db",
            "carriers[0].window": 0,
            "carriers[0].bind_type": "both",
        }
    )
    mapping["carriers"].append({"name": "second", "host": "h", "port": 1, "system_id": "s"})
    errors = errors_of(mapping)
    assert sorted(e.split(":")[0] for e in errors) == [
        "carriers[0].bind_type",
        "carriers[0].window",
        "carriers[1].password",
        "http.port",
        "log.format",
        "node.data_dir",
        "store.pth",
    ]


def test_each_section_has_a_module_of_its_own_and_one_loader_reads_them() -> None:
    """gateway.config is a package: each section's dataclass lives in a module named for it,
    and gateway.config.loader (once gateway.confload) reads the whole tree."""
    import dataclasses
    import importlib
    import typing

    from gateway.config import loader

    hints = typing.get_type_hints(GatewayConfig)
    modules = {
        "node": "node",
        "http": "http",
        "log": "log",
        "store": "store",
        "retention": "store",
        "carriers": "carriers",
        "messages": "messages",
        "routes": "messages",
        "callbacks": "callbacks",
        "compliance": "compliance",
        "shutdown": "shutdown",
        "front": "front",
        "inbound": "inbound",
        "digest": "digest",
        "links": "links",
        "cluster": "cluster",
    }
    assert {f.name for f in dataclasses.fields(GatewayConfig)} == set(modules)
    for name, module in modules.items():
        [section] = [
            t for t in (hints[name], *typing.get_args(hints[name])) if dataclasses.is_dataclass(t)
        ]
        assert section.__module__ == f"gateway.config.{module}", name
    assert GatewayConfig.__module__ == "gateway.config.root"
    assert ConfigError is loader.ConfigError
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("gateway.confload")


def test_errors_of_every_section_are_reported_together_with_their_key_paths() -> None:
    mapping = data(**{"carriers[0].window": 0, "http.port": -1})
    mapping["front"] = {"port": 99999, "accounts": [{"system_id": "crm"}]}
    mapping["links"] = {"base_url": "ftp://x"}
    mapping["inbound"] = {"numbers": [{"number": "x"}], "loop_repeats": 1}
    mapping["digest"] = {"from_address": "nobody", "smtp": {"host": ""}}
    mapping["retention"] = {"batch": 0}
    mapping["compliance"] = {"quiet_hours": "nine to five"}
    errors = errors_of(mapping)
    paths = sorted(e.split(":")[0] for e in errors)
    for expected in (
        "carriers[0].window",
        "compliance.quiet_hours",
        "digest.from_address",
        "digest.smtp.host",
        "front.accounts[0].password_hash",
        "front.port",
        "http.port",
        "inbound.loop_repeats",
        "inbound.numbers[0].number",
        "links.base_url",
        "retention.batch",
    ):
        assert expected in paths, (expected, errors)


def test_unknown_keys_are_refused_at_every_level() -> None:
    mapping = data(
        **{
            "debug": True,
            "node.datadir": "x",
            "http.tokens[0].token": "clear",
            "carriers[0].pasword": "pw",
        }
    )
    errors = errors_of(mapping)
    assert errors == [
        "debug: unknown key",
        "node.datadir: unknown key (did you mean 'data_dir'?)",
        "http.tokens[0].token: unknown key",
        "carriers[0].pasword: unknown key (did you mean 'password'?)",
    ]


def test_reconnect_max_below_reconnect_initial_is_refused() -> None:
    errors = errors_of(
        data(**{"carriers[0].reconnect_initial": 10.0, "carriers[0].reconnect_max": 5})
    )
    assert errors == ["carriers[0].reconnect_max: must be at least reconnect_initial (10), got 5"]
    equal = data(**{"carriers[0].reconnect_initial": 5, "carriers[0].reconnect_max": 5})
    assert load_dataclass(GatewayConfig, equal).carriers[0].reconnect_max == 5.0


def test_duplicate_carrier_names_are_refused() -> None:
    mapping = data()
    first = mapping["carriers"][0]
    mapping["carriers"] += [dict(first, host="other"), dict(first, name="b"), dict(first)]
    assert errors_of(mapping) == [
        "carriers[1].name: duplicate of carriers[0].name",
        "carriers[3].name: duplicate of carriers[0].name",
    ]


def test_duplicate_token_names_and_hashes_are_refused() -> None:
    mapping = data()
    mapping["http"]["tokens"].append({"name": "ops", "sha256": hash_token("other")})
    mapping["http"]["tokens"].append({"name": "ci", "sha256": hash_token(TOKEN)})
    assert errors_of(mapping) == [
        "http.tokens[1].name: duplicate of tokens[0].name",
        "http.tokens[2].sha256: duplicate of tokens[0].sha256",
    ]


# -- credentials published in this repository ---------------------------------------------


def test_the_shipped_config_is_a_development_one() -> None:
    assert load_config(SHIPPED).node.development is True


def test_without_development_the_shipped_credentials_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SHIPPED.read_text()
    assert "\ndevelopment = true" in text
    path = write(tmp_path / "g.toml", text.replace("\ndevelopment = true", "\n#"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    errors = info.value.errors
    assert len(errors) == 2, errors
    assert errors[0].startswith("http.tokens[0].sha256: the token 'dev-token-change-me'")
    assert errors[1].startswith("front.accounts[0].password_hash: the password 'crmpass'")
    assert all("[node] development = true" in e for e in errors)
    # check-config says the same, and so refuses the file.
    with pytest.raises(SystemExit) as exit_info:
        main(["check-config", "--config", str(path)])
    assert exit_info.value.code == 2
    printed = capsys.readouterr().err
    assert "dev-token-change-me" in printed and "crmpass" in printed


def test_the_development_token_is_refused_unless_development() -> None:
    dev = hash_token("dev-token-change-me")
    errors = errors_of(data(**{"http.tokens[0].sha256": dev}))
    assert [e.split(":")[0] for e in errors] == ["http.tokens[0].sha256"]
    accepted = load_dataclass(
        GatewayConfig, data(**{"http.tokens[0].sha256": dev, "node.development": True})
    )
    assert accepted.http.tokens[0].matches("dev-token-change-me")


def test_the_development_front_password_is_refused_under_any_salt() -> None:
    from gateway.front.passwords import hash_password

    def front(password: str) -> dict[str, Any]:
        account = {"system_id": "crm", "password_hash": hash_password(password, 1000)}
        return {"port": 0, "accounts": [account]}

    errors = errors_of(data(front=front("crmpass")))
    assert [e.split(":")[0] for e in errors] == ["front.accounts[0].password_hash"]
    assert load_dataclass(GatewayConfig, data(front=front("crmpass"), **{"node.development": True}))
    assert load_dataclass(GatewayConfig, data(front=front("an0ther!")))


# -- secrets ------------------------------------------------------------------------------


def test_secrets_never_appear_in_repr_or_str() -> None:
    config = load_dataclass(
        GatewayConfig, data(**{"carriers[0].password": "s3cr3t!", "http.tokens[0].name": "ops"})
    )
    digest = hash_token(TOKEN)
    for text in (repr(config), str(config), repr(config.carriers[0]), str(config.http)):
        assert "s3cr3t!" not in text
        assert digest not in text
        assert TOKEN not in text
    assert "name='acme'" in repr(config.carriers[0])
    assert "name='ops'" in repr(config.http.tokens[0])


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token(TOKEN) == hashlib.sha256(TOKEN.encode()).hexdigest()


def test_token_matches_only_its_own_clear_value() -> None:
    token = TokenConfig(name="ops", sha256=hash_token(TOKEN))
    assert token.matches(TOKEN)
    assert not token.matches(TOKEN + "x")
    assert not token.matches("")
    assert not token.matches(hash_token(TOKEN))  # the stored hash is not a token


def test_token_comparison_goes_through_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    real = hmac.compare_digest
    calls: list[tuple[str, str]] = []

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(config_http.hmac, "compare_digest", spy)
    config = load_dataclass(GatewayConfig, data())
    assert config.http.tokens[0].matches(TOKEN)
    assert calls == [(hash_token(TOKEN), hash_token(TOKEN))]


def test_find_token_compares_every_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    mapping = data()
    mapping["http"]["tokens"].append({"name": "ci", "sha256": hash_token("ci-token")})
    config = load_dataclass(GatewayConfig, mapping)
    real = hmac.compare_digest
    calls: list[str] = []

    def spy(a: str, b: str) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(config_http.hmac, "compare_digest", spy)
    found = config.http.find_token(TOKEN)
    assert found is not None and found.name == "ops"
    assert len(calls) == 2  # no early exit on the first match
    assert config.http.find_token("ci-token") == config.http.tokens[1]
    assert config.http.find_token("nope") is None


# -- files and paths ----------------------------------------------------------------------


def test_relative_data_dir_resolves_against_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path / "etc" / "gw.toml", MINIMAL_TOML.replace('"data"', '"../var/gw"'))
    config = load_config(path)
    assert config.node.data_dir == str(tmp_path / "var" / "gw")
    assert config.store_path == tmp_path / "var" / "gw" / "smsgw.db"


def test_relative_data_dir_with_a_relative_config_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "conf" / "gw.toml", MINIMAL_TOML)
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("conf/gw.toml"))
    assert config.node.data_dir == str(tmp_path / "conf" / "data")


def test_absolute_data_dir_and_store_path_are_kept(tmp_path: Path) -> None:
    text = MINIMAL_TOML.replace('"data"', f'"{tmp_path / "abs"}"') + ""
    text = text.replace("[store]", f'[store]\npath = "{tmp_path / "db" / "x.db"}"')
    config = load_config(write(tmp_path / "a" / "gw.toml", text))
    assert config.node.data_dir == str(tmp_path / "abs")
    assert config.store_path == tmp_path / "db" / "x.db"


def test_resolve_paths_is_idempotent(tmp_path: Path) -> None:
    config = load_dataclass(GatewayConfig, MINIMAL).resolve_paths(tmp_path / "gw.toml")
    assert config.resolve_paths(Path("/elsewhere/gw.toml")) == config


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == [f"{path}: file not found"]
    assert info.value.source == path


def test_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.toml", "[node]\ndata_dir = \n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [error] = info.value.errors
    assert error.startswith(f"{path}: invalid TOML: ")
    assert "line 2" in error


def test_value_errors_from_a_file_carry_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "gw.toml", MINIMAL_TOML.replace("port = 2775", 'port = "x"'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == ["carriers[0].port: expected int, got str"]
    assert info.value.source == path
    assert (
        str(info.value)
        == f"{path}: 1 configuration error:\n  carriers[0].port: expected int, got str"
    )


# -- the generic loader -------------------------------------------------------------------


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True)
class Item:
    n: int = field(metadata=check(in_range(0, 9)))


@dataclass(frozen=True, slots=True)
class Pair:
    low: int
    high: int

    def validate(self) -> list[str]:
        return [] if self.low <= self.high else [f"high: must be >= low ({self.low})"]


@dataclass(frozen=True, slots=True)
class Sample:
    items: list[Item]
    names: tuple[str, ...] = ()
    point: tuple[int, float] = (0, 0.0)
    by_name: dict[str, Item] = field(default_factory=dict)
    pairs: tuple[Pair, ...] = ()
    colour: Colour = Colour.RED
    mode: Literal["a", 1, True] = "a"
    either: int | str = 0
    maybe: float | None = None
    raw: Any = None


def sample_errors(mapping: dict[str, Any], path: str = "") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_dataclass(Sample, mapping, path)
    return info.value.errors


def test_loader_converts_every_supported_shape() -> None:
    sample = load_dataclass(
        Sample,
        {
            "items": [{"n": 1}, {"n": 2}],
            "names": ["x", "y"],
            "point": [3, 4],
            "by_name": {"a b": {"n": 5}},
            "pairs": [{"low": 1, "high": 2}],
            "colour": "blue",
            "mode": True,
            "either": "text",
            "maybe": 2,
            "raw": {"any": ["thing"]},
        },
    )
    assert sample == Sample(
        items=[Item(1), Item(2)],
        names=("x", "y"),
        point=(3, 4.0),
        by_name={"a b": Item(5)},
        pairs=(Pair(1, 2),),
        colour=Colour.BLUE,
        mode=True,
        either="text",
        maybe=2.0,
        raw={"any": ["thing"]},
    )


def test_loader_paths_reach_into_lists_dicts_and_hooks() -> None:
    errors = sample_errors(
        {
            "items": [{"n": 1}, {"n": 10}, {}],
            "names": ["x", 2],
            "point": [1],
            "by_name": {"a b": {"n": "1"}, "ok": {"n": 1}},
            "pairs": [{"low": 1, "high": 2}, {"low": 3, "high": 2}],
            "colour": "green",
            "mode": 2,
            "either": [1],
            "maybe": "x",
        },
        path="sample",
    )
    assert errors == [
        "sample.items[1].n: must be 0..9, got 10",
        "sample.items[2].n: missing required key",
        "sample.names[1]: expected str, got int",
        "sample.point: expected 2 items, got 1",
        'sample.by_name."a b".n: expected int, got str',
        "sample.pairs[1].high: must be >= low (3)",
        "sample.colour: expected one of 'red', 'blue', got 'green'",
        "sample.mode: expected one of 'a', 1, True, got 2",
        "sample.either: expected int or str, got array",
        "sample.maybe: expected float, got str",
    ]


def test_literal_and_enum_values_match_type_and_value() -> None:
    assert sample_errors({"items": [], "mode": 1.0}) == [
        "mode: expected one of 'a', 1, True, got 1.0"
    ]
    assert sample_errors({"items": [], "colour": 1}) == [
        "colour: expected one of 'red', 'blue', got 1"
    ]
    assert load_dataclass(Sample, {"items": [], "mode": 1}).mode == 1
    assert load_dataclass(Sample, {"items": [], "mode": True}).mode is True


def test_loader_refuses_a_non_table_at_the_top() -> None:
    with pytest.raises(ConfigError) as info:
        load_dataclass(Sample, [])  # type: ignore[arg-type]
    assert info.value.errors == ["(top level): expected table, got array"]


def test_loader_rejects_unsupported_annotations_as_a_programming_error() -> None:
    @dataclass
    class Odd:
        when: complex

    with pytest.raises(TypeError, match="unsupported type complex"):
        load_dataclass(Odd, {"when": 1})


def test_load_toml_reads_any_dataclass(tmp_path: Path) -> None:
    path = write(tmp_path / "s.toml", "items = [{ n = 1 }]\ncolour = 'blue'\n")
    assert load_toml(Sample, path) == Sample(items=[Item(1)], colour=Colour.BLUE)


def test_retention_and_store_space_defaults_and_bad_values() -> None:
    config = load_dataclass(GatewayConfig, data())
    assert config.retention.messages_days == 30.0 and config.retention.idempotency_days == 7.0
    assert config.store.min_free_mb == 256
    tuned = load_dataclass(
        GatewayConfig, data(**{"retention": {"messages_days": 0.5, "batch": 100}})
    )
    assert tuned.retention.messages_days == 0.5 and tuned.retention.batch == 100
    errors = errors_of(
        data(
            **{
                "retention": {"messages_days": -1, "batch": 0},
                "store.min_free_mb": -5,
                "store.health_check_interval": 0,
            }
        )
    )
    text = "\n".join(str(e) for e in errors)
    for key in (
        "retention.messages_days",
        "retention.batch",
        "store.min_free_mb",
        "store.health_check_interval",
    ):
        assert key in text, text


def test_the_postgresql_store_keys_are_checked_without_quoting_the_dsn() -> None:
    config = load_dataclass(
        GatewayConfig,
        data(
            **{
                "store.backend": "postgresql",
                "store.dsn": "postgresql://smsgw@db.example.net:5432/smsgw",
                "store.password_file": "/etc/smsgw/pg-password",
                "store.pool_size": 4,
                "store.statement_timeout": 5,
            }
        ),
    )
    assert config.store.backend == "postgresql" and config.store.pool_size == 4
    assert config.store.statement_timeout == 5.0
    cases = [
        ({"store.backend": "postgresql"}, 'store.dsn: required with backend = "postgresql"'),
        (
            {"store.backend": "postgresql", "store.dsn": "postgresql://u:s3cret@h/db"},
            "store.dsn: must not hold the password: use store.password_file or PGPASSWORD",
        ),
        (
            {"store.backend": "postgresql", "store.dsn": "postgresql://u@h/db?password=s3cret"},
            "store.dsn: must not hold the password",
        ),
        (
            {"store.backend": "postgresql", "store.dsn": "mysql://u@h/s3cret"},
            "store.dsn: must be a postgresql:// URI",
        ),
        (
            {"store.backend": "postgresql", "store.dsn": "postgresql://u@h:5432"},
            "store.dsn: must name the database",
        ),
        ({"store.dsn": "postgresql://u@h/db"}, 'store.dsn: only for backend = "postgresql"'),
        ({"store.pool_size": 0}, "store.pool_size: must be 1..1000, got 0"),
        ({"store.statement_timeout": 0}, "store.statement_timeout: must be 0.1..3600, got 0"),
    ]
    for changes, expected in cases:
        errors = errors_of(data(**changes))
        assert any(e.startswith(expected) for e in errors), (changes, errors)
        assert not any("s3cret" in e for e in errors), errors
