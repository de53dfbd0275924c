"""Issue 17.2: hostile keyword rules and poisoned MOs cannot freeze the daemon.

Keyword patterns run on RE2 (linear time): ``^(a+)+$`` against forty ``a`` and a ``!``, which
pins Python's ``re`` for hours, is answered at once; a pattern RE2 cannot take is refused
where rules are configured (file, numbers API, campaigns API) with RE2's reason."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import InboundConfig, KeywordRuleConfig
from gateway.config.loader import ConfigError, load_dataclass
from gateway.inbound.keywords import KeywordRule, PatternError, compile_pattern, match
from gateway.store.sqlite import SqliteStore
from smsc_simulator.server import Simulator
from tests.api_fakes import make_config, running_api
from tests.test_ops_process import (
    AUTH,
    Daemon,
    NotifySocket,
    config_text,
    eventually,
    simulator,  # noqa: F401 - the fixture
)

EVIL = "^(a+)+$"
EVIL_TEXT = "a" * 40 + "!"
NUMBER = "36180"
LIVENESS_SECONDS = 120.0
"""Only a bound on a hang (RE2 answers in microseconds; Python's re would take hours):
not a speed assertion."""


def test_a_catastrophic_pattern_is_answered_at_once_by_the_matcher() -> None:
    """In a child process, so that a regression hangs the child (killed at the bound),
    not the test run: Python's re holds the GIL while it backtracks."""
    code = (
        "from gateway.inbound.keywords import KeywordRule, match\n"
        f"rule = KeywordRule.build('evil', None, patterns=[{EVIL!r}])\n"
        f"print(match([rule], {EVIL_TEXT!r}), match([rule], 'aaaa') is not None)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=LIVENESS_SECONDS
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "True"]


def test_patterns_behave_as_before_for_ordinary_rules() -> None:
    rules = [
        KeywordRule.build("size", None, patterns=[r"^taille\s+\d+"]),
        KeywordRule.build("code", None, patterns=[r"^\d{5}$"]),
        KeywordRule.build("all", None, patterns=[r"^stop\s+all\b"]),
        KeywordRule.build("cyr", None, patterns=[r"^\pL+ да$"]),
    ]
    assert (m := match(rules, "Taille 42")) is not None and m.rule.name == "size"
    assert (m := match(rules, "75001")) is not None and m.rule.name == "code"
    assert match(rules, "750012") is None
    assert (m := match(rules, "STOP ALL please")) is not None and m.rule.name == "all"
    assert match(rules, "stop allez") is None
    assert (m := match(rules, "Привет ДА")) is not None and m.rule.name == "cyr"


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"(a)\1", "invalid escape sequence"),  # a backreference
        (r"^yes(?=!)", "lookaround"),
        (r"(?<!no)thanks", "lookaround"),
        (r"end\Z", r"\z"),
        ("(a{1000}){1000}", "repetition"),
        ("[", "missing ]"),
        ("x" * 1001, "longer than 1000"),
    ],
)
def test_a_pattern_re2_cannot_take_is_a_config_error_with_the_reason(
    pattern: str, says: str
) -> None:
    with pytest.raises(PatternError) as err:
        compile_pattern(pattern)
    assert says in str(err.value)
    with pytest.raises(ConfigError) as config_err:
        load_dataclass(
            KeywordRuleConfig,
            {"name": "r", "patterns": ["ok", pattern], "actions": [{"type": "help"}]},
        )
    [problem] = config_err.value.errors
    assert problem.startswith("patterns[1]: ")
    assert says in problem


def test_the_catastrophic_pattern_itself_is_accepted_and_harmless() -> None:
    rule = load_dataclass(
        KeywordRuleConfig, {"name": "r", "patterns": [EVIL], "actions": [{"type": "help"}]}
    )
    assert rule.patterns == (EVIL,)


async def test_the_numbers_api_refuses_a_backreference_with_400(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        async with running_api(config=make_config(), store=store) as api:
            body = {
                "keywords": [{"name": "r", "patterns": [r"(a)\1"], "actions": [{"type": "help"}]}]
            }
            got = await api.request("PUT", "/v1/numbers/36111", json=body)
            assert got.status == 400, got.body
            [detail] = got.body["error"]["details"]
            assert detail["path"] == "keywords[0].patterns[0]"
            assert "RE2" in detail["message"] and "backreferences" in detail["message"]
            assert await store.inbound_numbers() == []
    finally:
        await store.close()


async def test_a_stored_number_with_a_pattern_now_refused_is_skipped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Kept by an older version (Python re took it): the daemon starts, the number is not
    routed, and an error says which and why."""
    from gateway.inbound.numbers import NumberBook

    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        rules = [{"name": "r", "patterns": [r"(a)\1"], "actions": [{"type": "help"}]}]
        await store.put_inbound_number("36111", {"keywords": rules}, 0.0)
        book = NumberBook(InboundConfig(), lambda n: n)
        await book.load(store)
        assert book.find("36111") is None
        [record] = [r for r in caplog.records if r.getMessage() == "inbound.number_refused"]
        fields = record.smsgw_fields  # type: ignore[attr-defined]
        assert fields["number"] == "36111" and "RE2" in fields["errors"]
    finally:
        await store.close()


# -- the daemon as a process: the reported case ---------------------------------------------


def inbound_text(rules: list[dict[str, Any]], **inbound: Any) -> str:
    """An ``[inbound]`` section with one number and ``rules`` (TOML from JSON values)."""
    lines = ["[inbound]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in inbound.items()]
    lines += ["[[inbound.numbers]]", f'number = "{NUMBER}"']
    for rule in rules:
        lines.append("[[inbound.numbers.rules]]")
        for key, value in rule.items():
            if key == "actions":
                items = ", ".join(
                    "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in a.items()) + "}"
                    for a in value
                )
                lines.append(f"actions = [{items}]")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class Running:
    daemon: Daemon
    http: aiohttp.ClientSession
    sim_url: str

    async def mo(self, text: str, source: str = "+33611112222") -> None:
        body = {"from": source, "to": NUMBER, "text": text}
        async with self.http.post(self.sim_url + "/v1/mo", json=body) as r:
            assert r.status < 300, await r.text()

    async def interactions(self) -> list[dict[str, Any]]:
        async with self.http.get(self.daemon.url + "/v1/interactions?order=asc", headers=AUTH) as r:
            assert r.status == 200, await r.text()
            items: list[dict[str, Any]] = (await r.json())["items"]
            return items


@pytest.fixture
async def running(
    tmp_path: Path,
    simulator: Simulator,  # noqa: F811 - the fixture
) -> AsyncIterator[Any]:
    assert simulator.smpp_port and simulator.control_port
    notify = NotifySocket(tmp_path / "notify.sock")
    daemons: list[Daemon] = []
    # A request to a frozen daemon fails after this, instead of hanging the test.
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))

    async def ready(daemon: Daemon) -> None:
        """This daemon's READY=1, or an AssertionError as soon as it died."""
        deadline = time.monotonic() + LIVENESS_SECONDS
        while time.monotonic() < deadline:
            assert daemon.proc.poll() is None, "the daemon died"
            try:
                data = notify.sock.recv(4096).decode()
            except BlockingIOError:
                await asyncio.sleep(0.02)
                continue
            if "READY=1" in data.split("\n"):
                return
        raise AssertionError("no READY=1")

    async def start(extra: str, may_die: bool = False) -> Running | None:
        """A daemon started and ready; with ``may_die``, None when it died first."""
        config = tmp_path / "gateway.toml"
        config.write_text(config_text(tmp_path / "data", simulator.smpp_port or 0, "alpha") + extra)
        daemon = Daemon(config, tmp_path / "daemon.log", notify.path)
        daemons.append(daemon)
        try:
            await daemon.wait_started()
            await ready(daemon)  # the binds are up: the simulator can send MOs
        except AssertionError:
            if may_die and daemon.proc.poll() is not None:
                return None
            raise
        return Running(daemon, http, f"http://127.0.0.1:{simulator.control_port}")

    try:
        yield start
    finally:
        for daemon in daemons:
            daemon.kill()
        await http.close()
        notify.close()


async def test_the_reported_rule_and_mo_leave_the_daemon_answering(running: Any) -> None:
    run = await running(
        inbound_text(
            [
                {"name": "evil", "patterns": [EVIL], "actions": [{"type": "tag", "tag": "a"}]},
                {"name": "ping", "keyword": "PING", "actions": [{"type": "tag", "tag": "p"}]},
            ]
        )
    )
    assert run is not None
    await run.mo(EVIL_TEXT)
    await run.mo("ping", source="+33622223333")

    async def both_done() -> bool:
        items = await run.interactions()
        return len(items) == 2 and all(i["state"] == "done" for i in items)

    await eventually(both_done, within=LIVENESS_SECONDS)
    items = await run.interactions()
    assert [(i["text"], i["rule"]) for i in items] == [(EVIL_TEXT, None), ("ping", "ping")]
    async with run.http.get(run.daemon.url + "/healthz") as r:
        assert r.status == 200
    await asyncio.sleep(0)


# -- quarantine: an MO whose handling keeps failing is set aside -------------------------------


async def test_an_mo_whose_handling_keeps_failing_is_quarantined_and_the_rest_go_on(
    tmp_path: Path,
) -> None:
    from gateway.inbound.service import InboundService
    from tests.test_inbound import Bench
    from tests.test_inbound_batch import ALICE, BOB, burst, mo, settled

    bench = Bench(tmp_path)
    bench.service.scheduler.retry_delay = 0.01
    real = bench.service.decider.decide
    calls: list[int] = []

    async def decide(interaction: Any, *args: Any) -> Any:
        if interaction.text == "poison":
            calls.append(interaction.id)
            raise RuntimeError("poisoned")
        return await real(interaction, *args)

    bench.service.decider.decide = decide  # type: ignore[method-assign]
    await bench.start()
    try:
        await burst(bench, [mo("poison"), mo("vote 1", BOB)])
        await burst(bench, [mo("vote 2")])  # ALICE's next MO, after the poison
        found = await settled(bench)
        by_text = {i.text: i for i in found}
        poison = by_text["poison"]
        assert poison.state == "quarantined"
        assert poison.attempts == bench.config.inbound.max_attempts == 3
        assert len(calls) == 3  # the first try, then two alone
        assert poison.last_error is not None and "RuntimeError('poisoned')" in poison.last_error
        assert (by_text["vote 1"].state, by_text["vote 2"].state) == ("done", "done")
        assert by_text["vote 1"].attempts == by_text["vote 2"].attempts == 0
        assert bench.service.stats.quarantined == 1
        names = {m.name: m for m in bench.service.collect()}
        assert names["smsgw_mo_quarantined"].samples[0].value == 1
        # A restart does not touch it again.
        await bench.restart()
        await settled(bench)
        assert len(calls) == 3
        again = await bench.store.get_interaction(poison.id)
        assert again is not None and again.state == "quarantined"
        assert ALICE == poison.source
        assert isinstance(bench.service, InboundService)
    finally:
        await bench.stop()


async def test_the_api_lists_the_dead_letters_and_requeues_one(tmp_path: Path) -> None:
    from gateway.store.base import NewInteraction

    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        [a, b] = await store.record_interactions(
            [NewInteraction("sim", "+33611111111", NUMBER, t, 0, 1, 1, 1.0, 1.0) for t in "ab"]
        )
        assert await store.begin_interaction_attempt(a, floor=1) == 2
        await store.fail_interaction(a, "stuck", add=0, quarantine=True, at=2.0)
        requeued: list[int] = []

        async def on_requeue(interaction_id: int) -> None:
            requeued.append(interaction_id)

        from tests.api_fakes import TOKEN  # noqa: F401 - running_api authenticates with it

        async with running_api(store=store) as api:
            api.client.app  # noqa: B018
            got = await api.get("/v1/interactions?state=quarantined")
            assert got.status == 200
            [item] = got.body["items"]
            assert (item["id"], item["state"], item["attempts"]) == (a, "quarantined", 2)
            assert item["last_error"] == "stuck"
            assert (await api.get("/v1/interactions?state=dead")).status == 400
            assert (await api.post(f"/v1/interactions/{b}/retry")).status == 409
            assert (await api.post("/v1/interactions/999/retry")).status == 404
            got = await api.post(f"/v1/interactions/{a}/retry")
            assert got.status == 202, got.body
            assert (got.body["state"], got.body["attempts"]) == ("pending", 0)
        again = await store.get_interaction(a)
        assert again is not None and again.state == "pending" and again.attempts == 0
        assert requeued == []  # running_api has no inbound service to tell
    finally:
        await store.close()


async def test_a_crashing_mo_is_quarantined_after_max_attempts_across_kill_restarts(
    running: Any,
) -> None:
    """The reported case in its general form: an MO whose handling kills the daemon
    (SIGKILL from a handler: a crash, or a hang ended by kill -9). Each start handles it
    again; after [inbound].max_attempts (3) starts that began it, the next one quarantines
    it, stays up, and handles the other MOs."""
    extra = inbound_text(
        [
            {
                "name": "crash",
                "keyword": "CRASH",
                "actions": [{"type": "handler", "handler": "tests.poison_handler:crash"}],
            },
            {"name": "ping", "keyword": "PING", "actions": [{"type": "tag", "tag": "p"}]},
        ]
    )
    first = await running(extra)
    assert first is not None
    await first.mo("crash")
    assert await first.daemon.wait_exit(LIVENESS_SECONDS) == -9
    starts, items = 1, []
    while True:  # restart as systemd would, until a start survives the pending MOs
        assert starts < 12, "the crashing MO was never set aside"
        starts += 1
        run = await running(extra, may_die=True)
        if run is None:
            continue

        async def settled_or_dead(run: Running = run) -> bool:
            nonlocal items
            if run.daemon.proc.poll() is not None:
                return True
            try:
                items = await run.interactions()
            except aiohttp.ClientError:
                return run.daemon.proc.poll() is not None
            return bool(items) and all(i["state"] != "pending" for i in items)

        await eventually(settled_or_dead, within=LIVENESS_SECONDS)
        if run.daemon.proc.poll() is None:
            break
    assert starts == 4  # the first run, two restarts that handled it, one that set it aside
    crashes = [i for i in items if i["text"] == "crash"]
    assert crashes and all(i["state"] == "quarantined" for i in crashes)
    assert all(i["attempts"] == 3 and "did not finish" in i["last_error"] for i in crashes)
    await run.mo("ping", source="+33622223333")

    async def pinged() -> bool:
        found = await run.interactions()
        return any(i["text"] == "ping" and i["state"] == "done" for i in found)

    await eventually(pinged, within=LIVENESS_SECONDS)
    async with run.http.get(run.daemon.url + "/metrics") as r:
        assert "smsgw_mo_quarantined_total 1.0" in await r.text()


# -- Python handlers run off the gateway's loop -------------------------------------------------

RELEASE = threading.Event()


async def blocking_handler(message: Any, contact: Any, campaign: Any, reply: Any) -> object:
    """A handler that blocks its thread (a synchronous client, time.sleep) until released."""
    RELEASE.wait(20)
    return "late"


async def test_a_blocking_handler_holds_its_thread_not_the_gateway(tmp_path: Path) -> None:
    import copy

    from tests.test_inbound import INBOUND, Bench, config_with
    from tests.test_inbound_batch import BOB, burst, mo, settled

    RELEASE.clear()
    inbound = copy.deepcopy(INBOUND)
    inbound["handler_timeout"] = 0.5
    inbound["numbers"][0]["rules"].append(
        {
            "name": "block",
            "keyword": "BLOCK",
            "actions": [
                {"type": "handler", "handler": "tests.test_inbound_hostile:blocking_handler"},
                {"type": "tag", "tag": "after"},
            ],
        }
    )
    bench = Bench(tmp_path)
    bench.config = config_with(inbound, tmp_path)
    bench.service = bench._service()
    await bench.start()
    try:
        await burst(bench, [mo("block"), mo("vote 1", BOB)])
        found = {i.text: i for i in await settled(bench)}
        blocked = found["block"]
        assert blocked.state == "done" and blocked.actions[0]["ok"] is False
        assert "TimeoutError" in blocked.actions[0]["error"]
        assert blocked.actions[1] == {"type": "tag", "ok": True, "tag": "after"}
        assert found["vote 1"].state == "done"
        assert bench.service.handler_runner.blocked == 1  # its thread is still held
        assert bench.service.stats.failed["handler"] == 1
        RELEASE.set()
        for _ in range(500):
            if bench.service.handler_runner.blocked == 0:
                break
            await asyncio.sleep(0.01)
        assert bench.service.handler_runner.blocked == 0
    finally:
        RELEASE.set()
        await bench.stop()


async def test_when_every_handler_thread_is_held_a_handler_fails_at_once() -> None:
    from gateway.inbound.handlers import HandlerRunner, HandlersBlocked

    class Replies:
        to = "+33600000000"
        sender = "36180"

        async def send(self, text: str, *, delay: float = 0.0) -> str | None:
            return "m1"

    RELEASE.clear()
    runner = HandlerRunner(threads=1)
    try:
        with pytest.raises(TimeoutError):
            await runner.call(blocking_handler, None, None, None, Replies(), 0.2)
        assert runner.blocked == 1
        with pytest.raises(HandlersBlocked):
            await runner.call(blocking_handler, None, None, None, Replies(), 0.2)
    finally:
        RELEASE.set()
        runner.stop()
