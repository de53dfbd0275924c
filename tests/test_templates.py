"""Message templates (15.9): saved, listed, changed and deleted per account; a preview that
renders a sample contact with its encoding and parts, and finds the longest rendering across
an audience read a page at a time."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.app.cli import main
from gateway.campaigns import preview
from tests.api_fakes import TOKEN
from tests.campaign_helpers import campaign_rig

MEMBERS = 2500


async def test_templates_are_saved_listed_changed_and_deleted(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        made = await rig.post("/v1/templates", {"name": " Hello ", "text": "Hi {first_name}"}, 201)
        assert (made["name"], made["text"]) == ("Hello", "Hi {first_name}")
        assert await rig.get(f"/v1/templates/{made['id']}") == made
        assert (await rig.get("/v1/templates"))["items"] == [made]
        answer = await rig.api.request(
            "PUT", f"/v1/templates/{made['id']}", json={"name": "Hello", "text": "Hey {name}"}
        )
        assert answer.status == 200, answer.text
        assert (
            answer.body["text"] == "Hey {name}" and answer.body["created_at"] == made["created_at"]
        )
        refused = await rig.post("/v1/templates", {"name": "", "text": "", "x": 1}, 400)
        paths = sorted(d["path"] for d in refused["error"]["details"])
        assert paths == ["name", "text", "x"]
        gone = await rig.api.request("DELETE", f"/v1/templates/{made['id']}")
        assert gone.status == 204
        await rig.get(f"/v1/templates/{made['id']}", 404)
        assert (await rig.get("/v1/templates"))["items"] == []


async def test_the_preview_renders_a_sample_with_its_encoding_and_parts(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await rig.new_list()
        await rig.import_csv(list_id, "number,name,code\n+33612345001,Ann Lee,A1\n")
        made = await rig.post(
            "/v1/templates", {"name": "code", "text": "Hi {first_name}, code {code}"}, 201
        )
        path = f"/v1/templates/{made['id']}/preview"
        by_number = await rig.post(path, {"contact": "+33612345001"}, 200)
        assert by_number["sample"] == {
            "number": "+33612345001",
            "text": "Hi Ann, code A1",
            "encoding": "gsm7",
            "parts": 1,
            "characters": 15,
            "problem": None,
        }
        assert "audience" not in by_number
        by_fields = await rig.post(path, {"contact": {"name": "Łukasz", "code": "Z9"}}, 200)
        assert by_fields["sample"]["text"] == "Hi Łukasz, code Z9"
        assert by_fields["sample"]["encoding"] == "ucs2"
        empty = await rig.post(path, {}, 200)
        assert empty["sample"]["text"] == "Hi , code "
        bad = await rig.post(path, {"contact": 5, "lists": [999]}, 400)
        assert sorted(d["path"] for d in bad["error"]["details"]) == ["contact", "lists[0]"]


async def test_the_longest_rendering_across_a_list_is_found_page_by_page(
    tmp_path: Path,
) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await rig.new_list()
        rows = [f"+3361{i:07d},Fan{i},{'x' * (i % 40)}" for i in range(MEMBERS)]
        long_number = "+33610001234"
        rows[1234] = f"{long_number},Fan1234,{'y' * 200}"  # two parts of GSM7
        await rig.import_csv(list_id, "number,name,note\n" + "\n".join(rows) + "\n")
        made = await rig.post("/v1/templates", {"name": "n", "text": "Hi {name} {note}"}, 201)

        pages: list[tuple[str, int]] = []
        search = rig.campaigns.search_contacts

        async def counted(*args: Any) -> Any:
            found = await search(*args)
            pages.append((args[2], len(found)))
            return found

        rig.campaigns.search_contacts = counted  # type: ignore[method-assign]
        shown = await rig.post(f"/v1/templates/{made['id']}/preview", {"lists": [list_id]}, 200)
        audience = shown["audience"]
        assert audience["contacts"] == MEMBERS
        longest = audience["longest"]
        assert (longest["number"], longest["encoding"], longest["parts"]) == (
            long_number,
            "gsm7",
            2,
        )
        assert longest["text"] == f"Hi Fan1234 {'y' * 200}"
        # Read a page at a time, never more than a page in hand.
        assert len(pages) == MEMBERS // preview.PAGE + 1
        assert all(size <= preview.PAGE for _, size in pages)
        assert pages[0][0] == "" and pages[1][0] < pages[2][0]  # by number, onwards


async def test_a_campaign_is_made_from_a_template_with_a_copy_of_its_text(
    tmp_path: Path,
) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await rig.new_list()
        await rig.import_csv(list_id, "number,name\n+33612345001,Ann Lee\n")
        made = await rig.post("/v1/templates", {"name": "hi", "text": "Hi {first_name}!"}, 201)
        body = {"name": "spring", "from": "ACME", "lists": [list_id], "template_id": made["id"]}
        campaign = await rig.post("/v1/campaigns", body, 201)
        assert campaign["text"] == "Hi {first_name}!"
        # Changed afterwards: the campaign keeps the text it was made with.
        changed = await rig.api.request(
            "PUT", f"/v1/templates/{made['id']}", json={"name": "hi", "text": "Bye"}
        )
        assert changed.status == 200
        await rig.post(f"/v1/campaigns/{campaign['id']}/start", None, 200)
        await rig.run_to_end(campaign["id"])
        assert await rig.messages_of(campaign["id"]) == [("+33612345001", "Hi Ann!")]
        both = await rig.post("/v1/campaigns", {**body, "text": "x"}, 400)
        assert [d["path"] for d in both["error"]["details"]] == ["text"]
        unknown = await rig.post("/v1/campaigns", {**body, "template_id": "0" * 26}, 400)
        assert [d["path"] for d in unknown["error"]["details"]] == ["template_id"]


async def test_smsgw_template_commands_against_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await rig.new_list("fans")
        await rig.import_csv(list_id, "number,name\n+33612345001,Ann Lee\n+33612345002,Bo\n")
        monkeypatch.setenv("SMSGW_URL", str(rig.api.client.make_url("")).rstrip("/"))
        monkeypatch.setenv("SMSGW_TOKEN", TOKEN)

        def smsgw(*argv: str) -> str:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert main(list(argv)) == 0
            return out.getvalue()

        made = json.loads(
            await asyncio.to_thread(
                smsgw, "template", "create", "--json", "--name", "hi", "--text", "Hi {name}!"
            )
        )
        listed = await asyncio.to_thread(smsgw, "template", "list")
        assert listed.strip() == f"{made['id']} 'hi': Hi {{name}}!"
        shown = await asyncio.to_thread(
            smsgw, "template", "preview", made["id"], "--contact", "+33612345002", "--list", "fans"
        )
        assert shown.splitlines() == [
            "sample  +33612345002: 6 characters, gsm7, 1 part(s)",
            "  Hi Bo!",
            "longest of 2 contacts  +33612345001: 11 characters, gsm7, 1 part(s)",
            "  Hi Ann Lee!",
        ]
        await asyncio.to_thread(smsgw, "template", "delete", made["id"])
        assert (await rig.get("/v1/templates"))["items"] == []
