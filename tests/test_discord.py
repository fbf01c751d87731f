"""The Discord adapter driven over the wire: the real discord.py client against tests/fake_discord.py.

Every test starts the adapter's `run()` with DISCORD_API_BASE / DISCORD_GATEWAY_URL pointing at a
fake Discord on 127.0.0.1, sends gateway frames (INTERACTION_CREATE, MESSAGE_CREATE) and asserts
on the REST calls the bot makes.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import re
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bot.adapters import discord_bot
from bot.config import Settings
from bot.core.digest_outbox import run_due
from bot.core.values import Actor, DigestItem, PostError, Reply, Request, Target
from bot.core.registry import load_commands
from bot.core.service import Service
from bot.core.store import Store
from summarizer import Models
from tests.fake_discord import MANAGE_GUILD, MEMBER_PERMISSIONS, TOKEN, Call, FakeDiscord
from tests.test_digest import Clock, add_doc

COMMANDS = load_commands()

EPHEMERAL = 1 << 6
SUPPRESS_EMBEDS = 1 << 2
MESSAGE_CONTENT_INTENT = 1 << 15


def discord_settings(settings: Settings, fake: FakeDiscord, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **{
        "discord_token": TOKEN, "discord_api_base": fake.api_base, "discord_gateway_url": fake.gateway_url,
        "discord_guild_id": fake.guild_id, **changes})


@contextlib.asynccontextmanager
async def running(service: Service, settings: Settings, fake: FakeDiscord) -> AsyncIterator[asyncio.Task]:
    """The adapter's own `run()` until the block ends (then cancelled, as the runner does)."""
    task = asyncio.create_task(discord_bot.run(service, settings))
    try:
        await fake.wait_ready()
        yield task
    finally:
        task.cancel()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def bot(seeded_service: Service, settings: Settings, fake: FakeDiscord) -> AsyncIterator[FakeDiscord]:
    async with running(seeded_service, discord_settings(settings, fake), fake):
        yield fake


def callback_path(fake: FakeDiscord, payload: dict[str, Any]) -> str:
    """Where the bot answers an interaction: POST /interactions/{id}/{token}/callback."""
    return rf"/interactions/{payload['id']}/{payload['token']}/callback"


async def run_command(fake: FakeDiscord, name: str, options: dict[str, Any] | None = None,
                      **kwargs: Any) -> tuple[dict[str, Any], Call]:
    """Dispatch one slash command; return its payload and the bot's interaction callback."""
    payload = fake.slash(name, options, **kwargs)
    await fake.dispatch("INTERACTION_CREATE", payload)
    return payload, await fake.wait_for("POST", callback_path(fake, payload))


async def followup(fake: FakeDiscord, payload: dict[str, Any], count: int = 1, timeout: float = 30.0) -> Call:
    return await fake.wait_for("POST", rf"/webhooks/{fake.app_id}/{payload['token']}", count=count,
                               timeout=timeout)


def message_body(call: Call) -> dict[str, Any]:
    """The message a call carries: an interaction callback's `data`, else the request body."""
    return call.json["data"] if "type" in call.json and "data" in call.json else call.json


def embed_text(call: Call) -> str:
    return "\n".join(f"{e.get('title', '')}\n{e.get('description', '')}" for e in message_body(call).get("embeds", []))


def pings_nobody(call: Call) -> bool:
    """The message was sent with nothing allowed to ping: no @everyone/@here, roles, users, reply author."""
    allowed = message_body(call)["allowed_mentions"]
    return allowed["parse"] == [] and not any(allowed.get(k) for k in ("users", "roles", "replied_user"))


def custom_ids(call: Call) -> list[str]:
    return [c["custom_id"] for row in message_body(call).get("components", []) for c in row["components"]]


# -- connecting and registering --------------------------------------------------------------------
def assert_description(description: str, help_text: str) -> None:
    """Discord takes at most 100 characters: longer help is cut at a word with "…"."""
    assert len(description) <= 100
    assert description == help_text or (description.endswith("…")
                                        and help_text.startswith(description[:-1].rstrip()))


async def test_connects_identifies_without_privileged_intents_and_syncs_registry_to_guild(bot: FakeDiscord):
    fake = bot
    put = await fake.wait_for("PUT", rf"/applications/{fake.app_id}/guilds/{fake.guild_id}/commands")
    assert put.authorized
    assert not fake.calls_to("PUT", rf"/applications/{fake.app_id}/commands")  # guild set: guild sync only
    identify = fake.identifies[0]
    assert identify["intents"] & MESSAGE_CONTENT_INTENT == 0

    registered = {c["name"]: c for c in put.json}
    expected_top = {c.group or c.name for c in COMMANDS.values()}
    assert set(registered) == expected_top
    for name, spec in COMMANDS.items():
        top = registered[spec.group or name]
        cmd = top if spec.group is None else next(o for o in top["options"] if o["name"] == spec.leaf)
        assert_description(cmd["description"], spec.help)
        options = {o["name"]: o for o in cmd.get("options", [])}
        uploads = spec.accepts_file  # /add: a url, or an attached file instead
        assert set(options) == {p.name for p in spec.params} | {"private"} | ({"file"} if uploads else set())
        assert options["private"]["type"] == 5 and not options["private"].get("required")
        if uploads:
            assert options["file"]["type"] == 11 and not options["file"].get("required")  # ATTACHMENT
        for param in spec.params:
            option = options[param.name]
            assert_description(option["description"], param.help)
            assert option["type"] == 3
            assert bool(option.get("required")) == (param.required and not uploads)
            assert bool(option.get("autocomplete")) == (param.autocomplete == "documents")
        if spec.admin:  # Discord keeps default permissions per top-level command (a whole group)
            assert int(top["default_member_permissions"]) == MANAGE_GUILD


async def test_without_guild_id_commands_sync_globally(seeded_service: Service, settings: Settings,
                                                       fake: FakeDiscord):
    async with running(seeded_service, discord_settings(settings, fake, discord_guild_id=None), fake):
        put = await fake.wait_for("PUT", rf"/applications/{fake.app_id}/commands")
        assert {c["name"] for c in put.json} == {c.group or c.name for c in COMMANDS.values()}
        assert not fake.calls_to("PUT", r"/applications/\d+/guilds/\d+/commands")


# -- commands -------------------------------------------------------------------------------------
async def test_status_is_answered_privately_by_default_with_no_mentions_allowed(bot: FakeDiscord):
    payload, callback = await run_command(bot, "status")
    assert callback.json["type"] == 4  # CHANNEL_MESSAGE_WITH_SOURCE: answered at once
    data = callback.json["data"]
    assert data["flags"] & EPHEMERAL
    assert pings_nobody(callback)
    assert "documents" in embed_text(callback) and "5" in embed_text(callback)


async def test_shared_search_defers_then_follows_up_with_numbered_source_links(bot: FakeDiscord):
    payload, callback = await run_command(bot, "search", {"query": "OpenAI board", "private": False})
    assert callback.json["type"] == 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: "digestbot is thinking…"
    assert not callback.json.get("data", {}).get("flags", 0) & EPHEMERAL
    answer = await followup(bot, payload)
    assert pings_nobody(answer)
    assert not answer.json.get("flags", 0) & EPHEMERAL
    text = embed_text(answer)
    assert "**Sources**" in text and "\n[1] " in text
    assert any(i.startswith("dgb:src:") for i in custom_ids(answer))


async def test_summary_document_autocomplete_offers_indexed_titles(bot: FakeDiscord, seeded_service: Service):
    payload = bot.slash("summary", {"document": "openai"}, focused="document")
    await bot.dispatch("INTERACTION_CREATE", payload)
    callback = await bot.wait_for("POST", callback_path(bot, payload))
    assert callback.json["type"] == 8  # APPLICATION_COMMAND_AUTOCOMPLETE_RESULT
    choices = callback.json["data"]["choices"]
    expected = await seeded_service.document_choices("openai", 25)
    assert choices and [c["value"] for c in choices] == [doc_id for doc_id, _ in expected]
    assert all(len(c["name"]) <= 100 for c in choices)


async def test_user_errors_get_a_short_visible_reply(bot: FakeDiscord):
    payload, callback = await run_command(bot, "summary", {"document": "no such document anywhere"})
    assert callback.json["type"] == 5
    answer = await followup(bot, payload)
    assert answer.json["content"].startswith("⚠️ No indexed document matches")
    assert answer.json["flags"] & SUPPRESS_EMBEDS


async def test_hostile_query_text_is_escaped_and_cannot_ping(bot: FakeDiscord):
    payload, _ = await run_command(bot, "search", {"query": "zzqx @everyone <@&123> <@!42> **x**",
                                                   "private": False})
    answer = await followup(bot, payload)
    body = embed_text(answer)
    assert "zzqx" in body
    assert "@everyone" not in body and not re.search(r"(?<!\\)<@", body)
    assert pings_nobody(answer)


ADMIN = MEMBER_PERMISSIONS | MANAGE_GUILD


async def reply_to(fake: FakeDiscord, name: str, options: dict[str, Any] | None = None, *,
                   permissions: int = MEMBER_PERMISSIONS, timeout: float = 120.0) -> dict[str, Any]:
    """The message body a command's reply ends up in: the callback's, or the first follow-up's."""
    payload, callback = await run_command(fake, name, options, member=fake.member(permissions=permissions))
    if callback.json["type"] == 4:
        return callback.json["data"]
    return (await followup(fake, payload, timeout=timeout)).json


def text_of(body: dict[str, Any]) -> str:
    return (body.get("content") or "") + "".join(
        f"{e.get('title', '')}\n{e.get('description', '')}" for e in body.get("embeds", []))


async def test_admin_commands_are_refused_server_side_without_manage_server(bot: FakeDiscord):
    """Discord hides them from members by default; a crafted or stale request is still refused."""
    for cmd in (c for c in COMMANDS.values() if c.admin):
        refused = await reply_to(bot, cmd.name, {p.name: "09:00" for p in cmd.params if p.required})
        assert refused["content"].startswith("⚠️") and "admins only" in refused["content"], cmd.name
    assert not bot.calls_to("POST", r"/channels/\d+/messages")


async def test_digest_now_posts_to_the_channel_and_failures_show_in_digest_status(bot: FakeDiscord):
    scheduled = await reply_to(bot, "digest schedule", {"time": "09:00", "timezone": "UTC"}, permissions=ADMIN)
    assert "Digest scheduled" in text_of(scheduled)

    bot.fail("POST", rf"/channels/{bot.channel_id}/messages", 403, {"message": "Missing Permissions", "code": 50013})
    failed = await reply_to(bot, "digest now", permissions=ADMIN)
    assert failed["content"].startswith("⚠️ The digest could not be posted")
    assert "missing permission" in failed["content"]
    status = text_of(await reply_to(bot, "digest status"))
    assert "failed" in status and "missing permission" in status

    posted = await reply_to(bot, "digest now", permissions=ADMIN)
    assert "Posted the digest (5 new documents)" in text_of(posted)
    digest = bot.calls_to("POST", rf"/channels/{bot.channel_id}/messages")[-1]
    assert pings_nobody(digest) and "Digest" in embed_text(digest)
    assert custom_ids(digest) == []  # digest items have no buttons


async def test_scheduled_digest_waits_out_a_long_rate_limit_and_reports_it(seeded_db, settings: Settings,
                                                                           models: Models, fake: FakeDiscord):
    """A 429 longer than discord.py waits itself: the run is retried after Retry-After, shown meanwhile."""
    from bot.core.digest_outbox import run_due

    now = [dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc)]
    shutil.copy(seeded_db, settings.db_path)
    service = Service(settings, Store.open(settings.db_path), models, clock=lambda: now[0])
    try:
        async with running(service, discord_settings(settings, fake), fake):
            await reply_to(fake, "digest schedule", {"time": "09:00", "timezone": "UTC"}, permissions=ADMIN)
            fake.rate_limit("POST", rf"/channels/{fake.channel_id}/messages", 600.0)
            now[0] = dt.datetime(2024, 5, 1, 9, 1, tzinfo=dt.timezone.utc)
            [outcome] = await run_due(service)
            assert outcome.status == "failed" and "rate limit" in outcome.error
            status = text_of(await reply_to(fake, "digest status"))
            assert "rate limit" in status and "retrying Wed 1 May 2024 09:11 UTC" in status  # now + 600 s

            now[0] += dt.timedelta(minutes=5)
            assert await run_due(service) == []  # still inside Retry-After: nothing is sent
            now[0] += dt.timedelta(minutes=6)
            [outcome] = await run_due(service)
            assert outcome.status == "posted"
            assert len(fake.calls_to("POST", rf"/channels/{fake.channel_id}/messages")) == 2
            assert "posted 5 documents" in text_of(await reply_to(fake, "digest status"))
    finally:
        service.close()


# -- /add with an attached file ------------------------------------------------------------------
GUIDE = (b"# Compost Tea Guide\n\nCompost tea is brewed by steeping mature compost in aerated water for a day. "
         b"Gardeners spray the brew on leaves to feed the soil food web.\n")


async def test_add_with_an_attached_file_indexes_it(bot: FakeDiscord, seeded_service: Service):
    attachment = bot.attachment("compost-tea.md", GUIDE, "text/markdown; charset=utf-8")
    payload, callback = await run_command(bot, "add", {"file": attachment, "private": False})
    assert callback.json["type"] == 5  # indexing may embed: deferred at once
    answer = await followup(bot, payload, timeout=60)
    assert "Added" in embed_text(answer) and "Compost Tea Guide" in embed_text(answer)
    assert pings_nobody(answer)
    assert bot.downloads == [attachment["url"].split("?")[0].removeprefix(f"http://127.0.0.1:{bot.port}")]
    [doc] = [d for d in seeded_service.store.documents() if d.title == "Compost Tea Guide"]
    assert doc.url == attachment["url"].split("?")[0]  # without the CDN's expiring signature
    assert "steeping mature compost" in seeded_service.store.document_text(doc.id)
    found = await seeded_service.handle(Request("search", {"query": "compost tea brewed"}, Actor("u"),
                                                Target("discord", bot.guild_id, bot.channel_id)))
    assert found.sources and found.sources[0].doc_id == doc.id


async def test_add_refuses_an_oversized_attachment_before_downloading_and_needs_a_url_or_file(
        bot: FakeDiscord, seeded_service: Service):
    documents = len(seeded_service.store.documents())
    huge = bot.attachment("huge.txt", b"small really", "text/plain", size=11 * 1024 * 1024)
    refused = await reply_to(bot, "add", {"file": huge})
    assert refused["content"].startswith("⚠️ huge.txt: larger than 10 MB")
    assert bot.downloads == []
    neither = await reply_to(bot, "add")
    assert neither["content"] == "⚠️ /add needs a url or an attached file."
    assert len(seeded_service.store.documents()) == documents


# -- @mentions ------------------------------------------------------------------------------------
QUESTION = "Who became interim CEO of OpenAI?"


async def test_mention_is_answered_in_a_thread_and_follow_up_mentions_there_work(bot: FakeDiscord):
    question = bot.message(f"<@{bot.app_id}> {QUESTION}")
    await bot.dispatch("MESSAGE_CREATE", question)
    thread = await bot.wait_for("POST", rf"/channels/{bot.channel_id}/messages/{question['id']}/threads")
    assert thread.json["name"] == QUESTION
    thread_id = question["id"]  # Discord gives a thread started from a message that message's id
    answer = await bot.wait_for("POST", rf"/channels/{thread_id}/messages", timeout=60)
    assert pings_nobody(answer)
    assert "**Sources**" in embed_text(answer)
    assert {i.split(":")[1] for i in custom_ids(answer)} == {"src"}  # a button per cited passage
    assert bot.calls_to("POST", rf"/channels/{thread_id}/typing")  # the thinking indicator

    follow_up = bot.message(f"<@!{bot.app_id}> and who came back as CEO?", channel_id=thread_id)
    await bot.dispatch("MESSAGE_CREATE", follow_up)
    second = await bot.wait_for("POST", rf"/channels/{thread_id}/messages", count=2, timeout=60)
    assert pings_nobody(second) and embed_text(second)
    assert not bot.calls_to("POST", rf"/channels/{thread_id}/messages/{follow_up['id']}/threads")


async def test_mention_where_threads_are_not_allowed_gets_a_reply_in_the_channel(bot: FakeDiscord):
    bot.fail("POST", r"/channels/\d+/messages/\d+/threads", 403, {"message": "Missing Permissions", "code": 50013})
    question = bot.message(f"<@{bot.app_id}> {QUESTION}")
    await bot.dispatch("MESSAGE_CREATE", question)
    answer = await bot.wait_for("POST", rf"/channels/{bot.channel_id}/messages", timeout=60)
    assert str(answer.json["message_reference"]["message_id"]) == question["id"]
    assert pings_nobody(answer)  # replies do not ping the author either
    assert "**Sources**" in embed_text(answer)


async def test_messages_that_do_not_mention_the_bot_are_ignored(bot: FakeDiscord):
    await bot.dispatch("MESSAGE_CREATE", bot.message("just chatting about OpenAI", mentions_bot=False))
    _, callback = await run_command(bot, "status")  # a later event is handled, so the first was seen
    assert not bot.calls_to("POST", r"/channels/\d+/messages.*")


# -- buttons ----------------------------------------------------------------------------------------
def sent_message(fake: FakeDiscord, custom_id: str) -> dict[str, Any]:
    return next(m for m in fake.messages.values()
                if any(c["custom_id"] == custom_id for row in m["components"] for c in row["components"]))


async def test_show_source_button_still_works_after_a_restart(seeded_service: Service, settings: Settings,
                                                              fake: FakeDiscord):
    config = discord_settings(settings, fake)
    async with running(seeded_service, config, fake):
        payload, _ = await run_command(fake, "search", {"query": "interim CEO"})
        answer = await followup(fake, payload)
    source_button = next(i for i in custom_ids(answer) if i.startswith("dgb:src:"))
    passage = seeded_service.passage_quote(int(source_button.rsplit(":", 1)[1]))
    assert passage is not None

    async with running(seeded_service, config, fake):  # a new client: no view objects survive
        click = fake.button(source_button, sent_message(fake, source_button))
        await fake.dispatch("INTERACTION_CREATE", click)
        callback = await fake.wait_for("POST", callback_path(fake, click))
    data = callback.json["data"]
    assert callback.json["type"] == 4 and data["flags"] & EPHEMERAL
    assert data["embeds"][0]["description"][:40].replace("\\", "") in passage.quote.replace("\\", "")
    assert pings_nobody(callback)


async def test_show_source_for_a_passage_no_longer_indexed_says_so(bot: FakeDiscord):
    button = "dgb:src:987654321"
    message = {**bot.message("old answer", mentions_bot=False), "author": bot.bot_user,
               "components": [{"type": 1, "components": [{"type": 2, "style": 2, "custom_id": button}]}]}
    click = bot.button(button, message)
    await bot.dispatch("INTERACTION_CREATE", click)
    callback = await bot.wait_for("POST", callback_path(bot, click))
    assert callback.json["data"]["content"] == "⚠️ That passage is no longer indexed."
    assert callback.json["data"]["flags"] & EPHEMERAL


# -- deadlines --------------------------------------------------------------------------------------
class SlowModel:
    """An OpenAI-compatible chat server on 127.0.0.1 that answers only once released."""

    TEXT = "The slow model wrote this summary. It took its time."

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __aenter__(self) -> "SlowModel":
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self._runner.cleanup()

    async def _complete(self, request: web.Request) -> web.Response:
        self.started.set()
        await asyncio.wait_for(self.release.wait(), 60)
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": self.TEXT}}]})


async def test_commands_are_acknowledged_within_a_second_while_a_summary_runs(seeded_db, settings: Settings):
    async with SlowModel() as model, FakeDiscord(heartbeat_interval_ms=100) as fake:
        settings = dataclasses.replace(settings, summarizer_url=model.url, summarizer_model="slow")
        shutil.copy(seeded_db, settings.db_path)
        service = Service(settings, Store.open(settings.db_path), Models.from_settings(settings))
        try:
            async with running(service, discord_settings(settings, fake), fake):
                started = time.monotonic()
                summary, callback = await run_command(fake, "summary", {"document": service.store.documents()[0].id})
                assert callback.json["type"] == 5 and callback.at - started < 1.0
                await asyncio.wait_for(model.started.wait(), 30)  # the model worker is now busy

                beats = len(fake.heartbeats)
                for name, options, kind in (("status", None, 4), ("search", {"query": "OpenAI"}, 5)):
                    started = time.monotonic()
                    _, callback = await run_command(fake, name, options)
                    assert callback.json["type"] == kind and callback.at - started < 1.0, name
                await fake.wait_heartbeats(beats + 3)  # the gateway heartbeat kept flowing too
                assert not model.release.is_set()

                model.release.set()
                answer = await followup(fake, summary)
                assert "slow model wrote this summary" in embed_text(answer)
        finally:
            service.close()  # also closes the generator's HTTP client


# -- digest posting -----------------------------------------------------------------------------
def digest_reply(n: int = 3, run: str | None = None) -> Reply:
    return Reply(f"{n} new documents.", title="Digest", items=[
        DigestItem(f"doc{i}", f"Document {i}", f"https://example.org/{i}", f"https://example.org/{i}",
                   f"docs/{i}.md", f"Summary of document {i}. @everyone should not be pinged.", "2024-05-01")
        for i in range(1, n + 1)], data={"run": run} if run else None)


async def test_digest_poster_posts_items_and_waits_out_short_rate_limits(bot: FakeDiscord,
                                                                                    seeded_service: Service):
    poster = seeded_service.posters["discord"]
    target = Target("discord", bot.guild_id, bot.channel_id)
    bot.rate_limit("POST", rf"/channels/{bot.channel_id}/messages", 0.3)
    ref = await poster.post(target, digest_reply())
    first, second = bot.calls_to("POST", rf"/channels/{bot.channel_id}/messages")
    assert second.at - first.at >= 0.3  # Discord's Retry-After was honoured
    assert pings_nobody(second)
    assert "Document 3" in embed_text(second) and "@everyone" not in embed_text(second)
    posted = bot.sent_messages(bot.channel_id)[-1]
    assert ref.endswith(f"/{bot.channel_id}/{posted['id']}")


@pytest.mark.parametrize("status, body, permanent, words", [
    (403, {"message": "Missing Permissions", "code": 50013}, False, "missing permission"),
    (404, {"message": "Unknown Channel", "code": 10003}, True, "not found"),
])
async def test_digest_post_failures_become_post_errors(bot: FakeDiscord, seeded_service: Service,
                                                       status: int, body: dict, permanent: bool, words: str):
    bot.fail("POST", rf"/channels/{bot.channel_id}/messages", status, body)
    with pytest.raises(PostError) as error:
        await seeded_service.posters["discord"].post(Target("discord", bot.guild_id, bot.channel_id), digest_reply())
    assert error.value.permanent is permanent and words in str(error.value)


async def test_long_rate_limits_are_handed_back_with_retry_after(bot: FakeDiscord, seeded_service: Service):
    bot.rate_limit("POST", rf"/channels/{bot.channel_id}/messages", 120.0)
    started = time.monotonic()
    with pytest.raises(PostError) as error:
        await seeded_service.posters["discord"].post(Target("discord", bot.guild_id, bot.channel_id), digest_reply())
    assert error.value.retry_after == 120.0 and not error.value.permanent
    assert time.monotonic() - started < 5  # handed to the outbox, not slept on


# -- digest crash recovery: exactly once --------------------------------------------------------
async def test_digest_poster_finds_its_run_in_the_channel_history(bot: FakeDiscord, seeded_service: Service):
    poster = seeded_service.posters["discord"]
    target = Target("discord", bot.guild_id, bot.channel_id)
    run = "s1@2024-05-01T09:00:00Z"
    ref = await poster.post(target, digest_reply(35, run))  # 35 items: two messages, the key in the first
    first, second = bot.calls_to("POST", rf"/channels/{bot.channel_id}/messages")
    assert first.json["embeds"][0]["footer"]["text"] == f"1/2 · digest {run}"
    assert second.json["embeds"][0]["footer"]["text"] == "2/2"
    forged = bot.message("not the bot", mentions_bot=False)  # someone else's message cannot stand in
    forged["embeds"] = [{"type": "rich", "footer": {"text": "digest s1@2024-05-02T09:00:00Z"}}]

    assert await poster.find(target, run) == ref
    assert await poster.find(target, "s1@2024-05-02T09:00:00Z") is None
    history = bot.calls_to("GET", rf"/channels/{bot.channel_id}/messages")
    assert history[-1].authorized and history[-1].query["limit"] == "100"

    bot.fail("GET", rf"/channels/{bot.channel_id}/messages", 403, {"message": "Missing Access", "code": 50001})
    assert await poster.find(target, "s2@x") == "unverified:s2@x"  # unreadable: counted as posted, never twice
    bot.delete_channel(bot.channel_id)
    assert await poster.find(target, run) is None


class Crash(BaseException):
    """The process dies here: like os._exit, nothing in the bot catches a BaseException."""


class CrashingPoster:
    """The adapter's poster in a process that dies just before posting, or just after Discord accepted it."""

    def __init__(self, poster: discord_bot.DiscordPoster, when: str) -> None:
        self.poster, self.when = poster, when

    async def post(self, target: Target, reply: Reply) -> str:
        await self.poster.client.wait_until_ready()  # a bot that was up and running (clean client shutdown)
        if self.when == "after":
            await self.poster.post(target, reply)
        raise Crash(self.when)


@pytest.mark.reliability
@pytest.mark.parametrize("crash", ["before", "after"])
async def test_a_digest_interrupted_by_a_crash_is_posted_exactly_once(settings: Settings, models: Models,
                                                                      fake: FakeDiscord, crash: str):
    """The restarted bot reads the channel: a digest that got out is recorded, one that did not is posted."""
    clock = Clock(dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc))
    target = Target("discord", fake.guild_id, fake.channel_id)
    config = discord_settings(settings, fake)

    def bot_messages() -> list[dict[str, Any]]:
        return fake.sent_messages(fake.channel_id)

    crashed = Service(settings, Store.open(settings.db_path), models, clock=clock)
    try:
        admin = Actor("1", "admin", is_admin=True)
        await crashed.handle(Request("digest schedule", {"time": "09:00", "timezone": "UTC"}, admin, target))
        docs = [add_doc(crashed, "alpha"), add_doc(crashed, "beta")]
        async with running(crashed, config, fake):
            crashed.register_poster("discord", CrashingPoster(crashed.posters["discord"], crash))
            clock.now = dt.datetime(2024, 5, 1, 9, 1, tzinfo=dt.timezone.utc)
            with pytest.raises(Crash):
                await run_due(crashed)
        [run] = crashed.store.schedules.runs()
        assert run.status == "pending" and sorted(run.doc_ids) == sorted(docs)
    finally:
        crashed.close()
    assert len(bot_messages()) == (1 if crash == "after" else 0)

    restarted = Service(settings, Store.open(settings.db_path), models, clock=clock)
    try:
        async with running(restarted, config, fake):
            clock.now += dt.timedelta(minutes=2)
            await run_due(restarted)
            assert fake.calls_to("GET", rf"/channels/{fake.channel_id}/messages")  # it looked before acting
            [digest] = bot_messages()  # posted exactly once, whichever side of the post the crash was
            assert digest["embeds"][0]["footer"]["text"] == f"digest {run.key}"
            assert all(name.title() in digest["embeds"][0]["description"] for name in ("alpha", "beta"))
            settled = restarted.store.schedules.run(run.key)
            assert settled.status == "posted" and settled.message_ref.endswith(f"/{fake.channel_id}/{digest['id']}")

            clock.now += dt.timedelta(days=1)  # the next day: those documents are not posted again
            await run_due(restarted)
            assert bot_messages() == [digest]
    finally:
        restarted.close()


# -- errors, logs, gateway ------------------------------------------------------------------------
async def test_a_failed_reply_is_reported_visibly(bot: FakeDiscord):
    bot.fail("POST", rf"/webhooks/{bot.app_id}/[^/]+", 400, {"message": "Invalid Form Body", "code": 50035})
    payload, _ = await run_command(bot, "search", {"query": "OpenAI"})
    report = await followup(bot, payload, count=2)
    assert report.json["content"].startswith("⚠️ Something went wrong")
    assert pings_nobody(report)


async def test_logs_never_contain_the_token(seeded_service: Service, settings: Settings, fake: FakeDiscord,
                                            caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    async with running(seeded_service, discord_settings(settings, fake), fake):
        payload, _ = await run_command(fake, "search", {"query": "OpenAI"})
        await followup(fake, payload)
        await fake.kill_session()  # reconnect + RESUME carry the token too
        await fake.wait_ready()
    assert fake.resumes and "discord" in caplog.text
    assert TOKEN not in caplog.text and TOKEN.split(".")[0] not in caplog.text


async def test_gateway_drop_is_resumed_and_commands_keep_working(bot: FakeDiscord):
    session = bot.sessions[0].session_id
    await bot.kill_session()
    await bot.wait_ready()
    assert bot.resumes and bot.resumes[0]["session_id"] == session
    _, callback = await run_command(bot, "status")
    assert callback.json["type"] == 4


async def test_sharded_client_identifies_every_shard(seeded_service: Service, settings: Settings):
    async with FakeDiscord(shards=2) as fake:
        async with running(seeded_service, discord_settings(settings, fake, discord_shards=2), fake):
            assert sorted(i["shard"] for i in fake.identifies) == [[0, 2], [1, 2]]
            _, callback = await run_command(fake, "status")
            assert callback.json["type"] == 4
