"""The real Bolt app driven by real Slack protocol traffic on 127.0.0.1.

HTTP mode gets signed requests; Socket Mode gets envelopes over a local websocket; every Web API
call (and every response_url post) lands in `FakeSlack`, which records it for the assertions.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import time
from pathlib import Path

import pytest
import yaml
from aiohttp import ClientSession, web

from bot.adapters import slack_app
from bot.adapters.render_slack import render
from bot.adapters.slack_app import SHARE_ACTION, SlackAdapter
from bot.adapters.slack_poster import ChannelPacer, SlackPoster
from bot.core.values import Actor, PostError, Reply, Request, Target
from bot.core.registry import load_commands
from bot.core.service import Service
from bot.core.store import Store
from summarizer import Models, Summary
from summarizer.extractive import KeyPoint
from tests.fake_slack import (
    BOT_USER_ID,
    HOST,
    TEAM_ID,
    FakeSlack,
    app_mention,
    block_action,
    event_callback,
    file_shared,
    form_body,
    interactive_body,
    post_signed,
    slash_command,
    user,
)

COMMANDS = load_commands()

SECRET = "signing-secret-for-tests"
RATE_LIMITED = {"ok": False, "error": "ratelimited"}
FORM = "application/x-www-form-urlencoded"
ROOT = Path(__file__).resolve().parent.parent


# ---- fixtures and helpers -------------------------------------------------------------------------

@pytest.fixture
async def slack():
    async with FakeSlack() as fake:
        yield fake


def slack_settings(service: Service, slack: FakeSlack, **changes):
    slack_env = dict(slack_bot_token=slack.bot_token, slack_signing_secret=SECRET, slack_api_url=slack.api_url,
                     slack_port=0)
    return dataclasses.replace(service.settings, **{**slack_env, **changes})


async def started(service: Service, settings) -> SlackAdapter:
    adapter = SlackAdapter(service, settings)
    await adapter.start(host=HOST)
    return adapter


@pytest.fixture
async def http_bot(seeded_service, slack):
    adapter = await started(seeded_service, slack_settings(seeded_service, slack))
    yield adapter
    await adapter.stop()


@pytest.fixture
async def socket_bot(seeded_service, slack):
    adapter = await started(seeded_service, slack_settings(seeded_service, slack, slack_app_token=slack.app_token,
                                                           slack_signing_secret=None))
    await slack.wait_connected()
    yield adapter
    await adapter.stop()


def events_url(bot: SlackAdapter) -> str:
    return f"http://{HOST}:{bot.port}{slack_app.EVENTS_PATH}"


async def send_command(bot: SlackAdapter, slack: FakeSlack, text: str, name: str = "r1", **fields):
    body = form_body(slash_command(text, response_url=slack.response_url(name), **fields))
    return await post_signed(events_url(bot), body, secret=SECRET, content_type=FORM)


async def send_event(bot: SlackAdapter, payload: dict, headers: dict | None = None):
    return await post_signed(events_url(bot), json.dumps(payload), secret=SECRET,
                             content_type="application/json", headers=headers)


def responses(slack: FakeSlack, name: str) -> list[dict]:
    return [c.params for c in slack.calls_to("response_url") if c.params["_name"] == name]


async def wait_responses(slack: FakeSlack, name: str, count: int = 1, timeout: float = 30) -> list[dict]:
    return await slack.wait_for(lambda: len(responses(slack, name)) >= count and responses(slack, name), timeout)


def block_texts(blocks: list[dict]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def seeded_doc(service: Service, title_part: str):
    return next(d for d in service.store.documents() if title_part in d.title)


# ---- HTTP mode: request verification ------------------------------------------------------------

async def test_url_verification_answers_the_challenge(http_bot, slack):
    status, text, _ = await send_event(http_bot, {"token": "t", "challenge": "c-123", "type": "url_verification"})
    assert status == 200 and json.loads(text) == {"challenge": "c-123"}


async def test_bad_signature_gets_401_and_nothing_runs(http_bot, slack):
    body = form_body(slash_command("sources", response_url=slack.response_url()))
    status, _, _ = await post_signed(events_url(http_bot), body, secret="not-the-secret", content_type=FORM)
    assert status == 401
    assert slack.calls == []


async def test_stale_timestamp_gets_401_even_with_a_valid_signature(http_bot, slack):
    body = form_body(slash_command("sources", response_url=slack.response_url()))
    stale = int(time.time()) - 6 * 60
    status, _, _ = await post_signed(events_url(http_bot), body, secret=SECRET, content_type=FORM, timestamp=stale)
    assert status == 401
    assert slack.calls == []


# ---- HTTP mode: slash command, share button -----------------------------------------------------

async def test_lookup_reply_is_ephemeral_with_a_share_button(http_bot, slack, seeded_service):
    status, text, _ = await send_command(http_bot, slack, "sources")
    assert status == 200 and text == ""
    [reply] = await wait_responses(slack, "r1")
    assert reply["response_type"] == "ephemeral"
    assert reply["unfurl_links"] is False and reply["unfurl_media"] is False
    for doc in seeded_service.store.documents():
        assert doc.title.replace("&", "&amp;") in block_texts(reply["blocks"])
    actions = reply["blocks"][-1]
    assert actions["type"] == "actions" and actions["elements"][0]["action_id"] == SHARE_ACTION
    assert json.loads(actions["elements"][0]["value"]) == {"c": "sources", "a": {}}
    assert slack.calls_to("users.info") == []  # lookups never ask who is an admin


async def test_command_text_is_unescaped_and_parsed_into_params(http_bot, slack, seeded_service):
    doc = seeded_doc(seeded_service, "Ilya Saw")
    await send_command(http_bot, slack, f"search Ilya &amp; &lt;OpenAI&gt; document:{doc.id}", "parsed")
    [reply] = await wait_responses(slack, "parsed")
    share = json.loads(reply["blocks"][-1]["elements"][0]["value"])
    assert share == {"c": "search", "a": {"query": "Ilya & <OpenAI>", "document": doc.id}}
    assert "Search: Ilya &amp; &lt;OpenAI&gt;" in block_texts(reply["blocks"])


async def test_unknown_subcommand_is_answered_in_the_ack(http_bot, slack):
    status, ack, _ = await send_command(http_bot, slack, "frobnicate <!here>")
    assert status == 200
    assert "Unknown command" in ack and "<!" not in ack


async def test_share_button_posts_in_channel_and_removes_the_ephemeral(http_bot, slack, seeded_service):
    doc = seeded_doc(seeded_service, "Ilya Saw")
    value = json.dumps({"c": "search", "a": {"query": "Ilya", "document": doc.id}})
    payload = block_action({"action_id": SHARE_ACTION, "value": value}, response_url=slack.response_url("share"))
    status, _, _ = await post_signed(events_url(http_bot), interactive_body(payload), secret=SECRET, content_type=FORM)
    assert status == 200
    shared, deleted = await wait_responses(slack, "share", 2)
    expected = await seeded_service.handle(Request("search", {"query": "Ilya", "document": doc.id}, Actor("U0USER"),
                                                   Target("slack", TEAM_ID, "C0CHAN")))
    assert shared["response_type"] == "in_channel" and shared["replace_original"] is False
    assert shared["blocks"][:-1] == render(expected)[0].blocks  # the same lookup, run again
    assert shared["blocks"][-1]["elements"][0]["text"] == "Shared by someone"
    assert deleted == {"_name": "share", "text": "", "delete_original": True}


class HeldModel:
    """An OpenAI-compatible chat server on 127.0.0.1 whose answers wait until `release` is set:
    a summarization that runs for as long as the test wants."""

    answer = "Investors discussed the new startup at length."

    def __init__(self):
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.url = ""

    async def _chat(self, request: web.Request) -> web.Response:
        self.started.set()
        await asyncio.wait_for(self.release.wait(), 60)
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": self.answer}}]})

    @contextlib.asynccontextmanager
    async def serving(self):
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, HOST, 0).start()
        self.url = f"http://{HOST}:{runner.addresses[0][1]}/v1"
        try:
            yield self
        finally:
            self.release.set()
            await runner.cleanup()


async def test_ack_arrives_within_a_second_while_a_long_summarization_runs(seeded_db, settings, slack):
    """The model server holds the summary until released; acks and fast commands must not wait for it."""
    model = HeldModel()
    async with model.serving():
        shutil.copy(seeded_db, settings.db_path)
        models = Models(generator_url=model.url, generator_model="held")
        service = Service(settings, Store.open(settings.db_path), models)
        bot = await started(service, slack_settings(service, slack))
        try:
            first, second = seeded_doc(service, "Forum"), seeded_doc(service, "Ilya Saw")
            status, text, elapsed = await send_command(bot, slack, f"summary {first.id}", "s1")
            assert (status, text) == (200, "_Working on it…_") and elapsed < 1.0
            await asyncio.wait_for(model.started.wait(), 30)  # the summarization is running now

            status, _, elapsed = await send_command(bot, slack, f"summary {second.id}", "s2")
            assert status == 200 and elapsed < 1.0
            status, _, elapsed = await send_command(bot, slack, "sources", "fast")
            assert status == 200 and elapsed < 1.0
            await wait_responses(slack, "fast")  # answered in full while the model is still busy
            assert not model.release.is_set() and responses(slack, "s1") == []

            model.release.set()
            [summary] = await wait_responses(slack, "s1")
            assert model.answer in block_texts(summary["blocks"])
            assert first.title in block_texts(summary["blocks"])
            await wait_responses(slack, "s2")
        finally:
            model.release.set()
            await bot.stop()
            service.close()


# ---- HTTP mode: mentions ------------------------------------------------------------------------

QUESTION = "Why was Sam Altman fired by the board?"


async def expected_answer(service: Service, question: str, thread: str) -> list[dict]:
    reply = await service.handle(Request("ask", {"question": question}, Actor("U0USER"),
                                         Target("slack", TEAM_ID, "C0CHAN", thread)))
    assert reply.ok and reply.sources
    return render(reply)[0].blocks


async def test_mention_is_answered_with_citations_in_its_thread(http_bot, slack, seeded_service):
    event = app_mention(f"<@{BOT_USER_ID}> {QUESTION}", ts="1700000001.000100")
    status, _, _ = await send_event(http_bot, event_callback(event))
    assert status == 200
    [post] = await slack.wait_calls("chat.postMessage", timeout=60)
    assert post.token == slack.bot_token
    assert post.params["channel"] == "C0CHAN" and post.params["thread_ts"] == "1700000001.000100"
    assert post.params["unfurl_links"] is False and post.params["unfurl_media"] is False
    assert post.params["blocks"] == await expected_answer(seeded_service, QUESTION, "1700000001.000100")
    assert any(b["type"] == "context" for b in post.params["blocks"])  # the cited sources


async def test_follow_up_mention_in_a_thread_stays_in_that_thread(http_bot, slack):
    event = app_mention(f"<@{BOT_USER_ID}> and who replaced him?", ts="1700000009.000200",
                        thread_ts="1700000001.000100")
    await send_event(http_bot, event_callback(event))
    [post] = await slack.wait_calls("chat.postMessage", timeout=60)
    assert post.params["thread_ts"] == "1700000001.000100"


async def test_retried_event_never_produces_a_second_answer(http_bot, slack, seeded_service):
    payload = event_callback(app_mention(f"<@{BOT_USER_ID}> {QUESTION}", ts="1700000002.000100"), event_id="EvRETRY1")
    assert (await send_event(http_bot, payload))[0] == 200
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert (await send_event(http_bot, payload, retry))[0] == 200
    # A later, different mention is answered: by then the retry has long been handled.
    later = event_callback(app_mention(f"<@{BOT_USER_ID}> who is Ilya?", ts="1700000003.000100"), event_id="EvLATER")
    await send_event(http_bot, later)
    posts = await slack.wait_calls("chat.postMessage", 2, timeout=60)
    assert sorted(p.params["thread_ts"] for p in posts) == ["1700000002.000100", "1700000003.000100"]
    assert not seeded_service.first_delivery("slack:event:EvRETRY1")


async def test_empty_mention_gets_the_short_help(http_bot, slack, seeded_service):
    await send_event(http_bot, event_callback(app_mention(f"<@{BOT_USER_ID}>", ts="1700000004.000100")))
    [post] = await slack.wait_calls("chat.postMessage")
    assert "Mention me with a question" in block_texts(post.params["blocks"])
    assert "`/digestbot help` lists the commands" in block_texts(post.params["blocks"])


# ---- files shared with the bot are indexed ------------------------------------------------------

GUIDE = (b"# Compost Tea Guide\n\nCompost tea is brewed by steeping mature compost in aerated water for a day. "
         b"Gardeners spray the brew on leaves to feed the soil food web.\n")


def indexed(service: Service, title: str):
    return [d for d in service.store.documents() if d.title == title]


async def test_file_attached_to_a_mention_is_indexed_and_answered_in_its_thread(http_bot, slack, seeded_service):
    file = slack.add_file("compost-tea.md", GUIDE, "text/markdown")
    event = app_mention(f"<@{BOT_USER_ID}> please index this", ts="1700000010.000100", files=[file])
    assert (await send_event(http_bot, event_callback(event)))[0] == 200
    [post] = await slack.wait_calls("chat.postMessage", timeout=60)
    assert post.params["channel"] == "C0CHAN" and post.params["thread_ts"] == "1700000010.000100"
    assert "Added" in block_texts(post.params["blocks"]) and "Compost Tea Guide" in block_texts(post.params["blocks"])
    [download] = slack.calls_to("url_private")
    assert download.token == slack.bot_token and download.params["_path"].endswith("/compost-tea.md")
    [doc] = indexed(seeded_service, "Compost Tea Guide")
    assert doc.url == file["permalink"]
    assert "steeping mature compost" in seeded_service.store.document_text(doc.id)
    found = await seeded_service.handle(Request("search", {"query": "compost tea brewed"}, Actor("U0USER"),
                                                Target("slack", TEAM_ID, "C0CHAN")))
    assert found.sources and found.sources[0].doc_id == doc.id
    assert slack.calls_to("files.info") == []  # the mention carried the whole file object


async def test_file_sent_in_a_direct_message_is_indexed_and_channel_shares_are_not(socket_bot, slack, seeded_service):
    in_channel = slack.add_file("channel-notes.txt", b"Notes someone shared in a channel.", "text/plain")
    sent = slack.add_file("compost-tea.md", GUIDE, "text/markdown")
    ignored = event_callback(file_shared(in_channel["id"], channel="C0CHAN"))
    await slack.wait_ack(await slack.send_envelope("events_api", ignored, retry_attempt=0, retry_reason=""))
    dm = event_callback(file_shared(sent["id"], channel="D0DM"))
    await slack.wait_ack(await slack.send_envelope("events_api", dm, retry_attempt=0, retry_reason=""))
    [post] = await slack.wait_calls("chat.postMessage", timeout=60)
    assert post.params["channel"] == "D0DM" and "thread_ts" not in post.params
    assert "Compost Tea Guide" in block_texts(post.params["blocks"])
    assert [c.params["file"] for c in slack.calls_to("files.info")] == [sent["id"]]
    assert [c.params["_path"].rsplit("/", 1)[1] for c in slack.calls_to("url_private")] == ["compost-tea.md"]
    assert indexed(seeded_service, "Compost Tea Guide") and not indexed(seeded_service, "channel-notes.txt")


async def test_files_that_cannot_be_fetched_safely_are_refused_with_a_reason(http_bot, slack, seeded_service):
    documents = len(seeded_service.store.documents())
    huge = slack.add_file("huge.pdf", b"%PDF-1.4 tiny", "application/pdf", size=50 * 1024 * 1024)
    foreign = {**slack.add_file("elsewhere.txt", b"text", "text/plain"),
               "url_private": "https://files.example.net/elsewhere.txt"}  # never gets the bot token
    unreadable = slack.add_file("no-scope.md", GUIDE, "text/markdown")
    slack.files_readable = False  # Slack sends its sign-in page instead of the file
    event = app_mention(f"<@{BOT_USER_ID}>", ts="1700000011.000100", files=[huge, foreign, unreadable])
    await send_event(http_bot, event_callback(event))
    posts = await slack.wait_calls("chat.postMessage", 3, timeout=60)
    texts = [block_texts(p.params["blocks"]) for p in posts]
    assert "huge.pdf: larger than 10 MB; not indexed." in texts[0]
    assert "elsewhere.txt: not a Slack file link; not indexed." in texts[1]
    assert "no-scope.md: Slack did not hand over the file" in texts[2] and "files:read" in texts[2]
    assert all(p.params["thread_ts"] == "1700000011.000100" for p in posts)
    assert [c.params["_path"].rsplit("/", 1)[1] for c in slack.calls_to("url_private")] == ["no-scope.md"]
    assert len(seeded_service.store.documents()) == documents


# ---- posting: pace, Retry-After, failures -------------------------------------------------------

async def test_poster_paces_a_channel_and_honours_retry_after(http_bot, slack):
    long_reply = Reply(text="\n\n".join(f"paragraph {i} " + "word " * 500 for i in range(12)), title="Digest")
    messages = render(long_reply)
    assert len(messages) == 3
    slack.script("chat.postMessage", status=429, body=RATE_LIMITED, headers={"Retry-After": "2"})
    ref = await http_bot.poster.post(Target("slack", TEAM_ID, "C0DIGEST"), long_reply)
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == len(messages) + 1  # one refused, then every part
    assert posts[1].at - posts[0].at >= 2.0  # waited out Retry-After
    assert all(b.at - a.at >= 0.95 for a, b in zip(posts[1:], posts[2:]))  # about one per second
    assert [p.params["blocks"] for p in posts[1:]] == [m.blocks for m in messages]
    assert ref == "1700000000.000001"


async def test_poster_reports_permanent_and_transient_failures(http_bot, slack):
    target = Target("slack", TEAM_ID, "C0GONE")
    slack.script("chat.postMessage", body={"ok": False, "error": "channel_not_found"})
    with pytest.raises(PostError) as refused:
        await http_bot.poster.post(target, Reply("hello"))
    assert refused.value.permanent and "channel_not_found" in str(refused.value)

    slack.script("chat.postMessage", status=429, body=RATE_LIMITED, headers={"Retry-After": "120"})
    with pytest.raises(PostError) as limited:
        await http_bot.poster.post(target, Reply("hello"))
    assert limited.value.retry_after == 120 and not limited.value.permanent


async def test_channel_pacer_serialises_one_channel_but_not_others():
    pacer = ChannelPacer(interval=0.5)
    stamps: dict[str, list[float]] = {"a": [], "b": []}

    async def post(channel):
        async with pacer.turn(channel):
            stamps[channel].append(time.monotonic())

    await asyncio.gather(*(post(c) for c in "aabb"))
    assert stamps["a"][1] - stamps["a"][0] >= 0.45
    assert abs(stamps["b"][0] - stamps["a"][0]) < 0.3


# ---- Socket Mode ----------------------------------------------------------------------------------

async def test_socket_mode_connects_through_the_configured_api_url(socket_bot, slack):
    [opened] = slack.calls_to("apps.connections.open")
    assert opened.token == slack.app_token


async def test_socket_mode_slash_command_is_acked_and_answered(socket_bot, slack, seeded_service):
    command = slash_command("status", response_url=slack.response_url("sm"))
    envelope = await slack.send_envelope("slash_commands", command, accepts_response_payload=True)
    await slack.wait_ack(envelope)
    [reply] = await wait_responses(slack, "sm")
    assert reply["response_type"] == "ephemeral"
    assert str(seeded_service.status()["documents"]) in block_texts(reply["blocks"])


async def test_socket_mode_mention_and_its_retry_answer_once(socket_bot, slack):
    payload = event_callback(app_mention(f"<@{BOT_USER_ID}> {QUESTION}", ts="1700000005.000100"), event_id="EvSOCKET")
    first = await slack.send_envelope("events_api", payload, retry_attempt=0, retry_reason="")
    retried = await slack.send_envelope("events_api", payload, retry_attempt=1, retry_reason="timeout")
    await slack.wait_ack(first)
    await slack.wait_ack(retried)
    later = event_callback(app_mention(f"<@{BOT_USER_ID}> who is Ilya?", ts="1700000006.000100"), event_id="EvSOCKET2")
    await slack.wait_ack(await slack.send_envelope("events_api", later, retry_attempt=0, retry_reason=""))
    posts = await slack.wait_calls("chat.postMessage", 2, timeout=60)
    assert sorted(p.params["thread_ts"] for p in posts) == ["1700000005.000100", "1700000006.000100"]


async def test_socket_mode_share_button(socket_bot, slack):
    payload = block_action({"action_id": SHARE_ACTION, "value": json.dumps({"c": "status", "a": {}})},
                           response_url=slack.response_url("sm-share"))
    await slack.wait_ack(await slack.send_envelope("interactive", payload))
    shared, deleted = await wait_responses(slack, "sm-share", 2)
    assert shared["response_type"] == "in_channel" and deleted["delete_original"] is True


async def test_run_serves_until_cancelled_and_registers_the_poster(seeded_service, slack):
    settings = slack_settings(seeded_service, slack, slack_app_token=slack.app_token, slack_signing_secret=None)
    task = asyncio.create_task(slack_app.run(seeded_service, settings))
    await slack.wait_connected()
    assert isinstance(seeded_service.posters["slack"], SlackPoster)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await slack.wait_for(lambda: slack.connected == 0)  # the websocket was closed


# ---- OAuth: multi-workspace install -------------------------------------------------------------

async def test_oauth_install_is_stored_in_sqlite_and_serves_that_workspace(seeded_service, slack):
    settings = slack_settings(seeded_service, slack, slack_bot_token=None, slack_client_id="111.222",
                              slack_client_secret="client-secret")
    bot = await started(seeded_service, settings)
    try:
        base = f"http://{HOST}:{bot.port}"
        async with ClientSession() as browser, asyncio.timeout(10):
            async with browser.get(f"{base}/slack/install") as page:
                assert page.status == 200
                state = page.cookies["slack-app-oauth-state"].value
                assert f"state={state}" in await page.text()  # the link to Slack's consent page
            # The state cookie is `Secure`: a browser sends it back because the real endpoint is HTTPS.
            async with browser.get(f"{base}/slack/oauth_redirect", params={"code": "good-code", "state": state},
                                   headers={"Cookie": f"slack-app-oauth-state={state}"}) as done:
                assert done.status == 200
        [access] = slack.calls_to("oauth.v2.access")
        assert access.token == slack.client_credentials and access.params["code"] == "good-code"
        installed = await bot.app.installation_store.async_find_bot(enterprise_id=None, team_id="T0OTHER")
        assert installed.bot_token in slack.installed_bot_tokens
        assert Path(settings.db_path).samefile(seeded_service.settings.db_path)

        status, _, _ = await send_command(bot, slack, "status", "other", team_id="T0OTHER")
        assert status == 200
        await wait_responses(slack, "other")
        await bot.poster.post(Target("slack", "T0OTHER", "C0OTHER"), Reply("digest"))
        assert slack.calls_to("chat.postMessage")[-1].token == installed.bot_token
        with pytest.raises(PostError) as missing:
            await bot.poster.post(Target("slack", "T0NOWHERE", "C1"), Reply("digest"))
        assert missing.value.permanent
    finally:
        await bot.stop()


# ---- the manifest ---------------------------------------------------------------------------------

def test_manifest_matches_the_adapter_and_the_registry():
    manifest = yaml.safe_load((ROOT / "slack-manifest.yml").read_text())
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == slack_app.SLASH_COMMAND
    hint = {part.strip() for part in command["usage_hint"].split("|")}
    assert hint == {cmd.usage().removeprefix("/") for cmd in COMMANDS.values()}
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(slack_app.BOT_SCOPES)
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == list(slack_app.BOT_EVENTS)
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True  # files can be sent in a DM
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True


# ---- digests: who may change them, posting through the outbox ----------------------------------

async def test_digest_changes_need_a_workspace_admin_or_owner(http_bot, slack):
    slack.users.update({"U0MEMBER": user("U0MEMBER"), "U0ADMIN": user("U0ADMIN", admin=True),
                        "U0OWNER": user("U0OWNER", owner=True)})
    for who in ("U0MEMBER", "U0GHOST", "U0ADMIN", "U0OWNER"):  # U0GHOST: users.info says user_not_found
        await send_command(http_bot, slack, "digest schedule 09:00 UTC weekdays", who, user_id=who)
    answers = {who: block_texts((await wait_responses(slack, who))[0]["blocks"])
               for who in ("U0MEMBER", "U0GHOST", "U0ADMIN", "U0OWNER")}
    assert "admins only" in answers["U0MEMBER"] and "admins only" in answers["U0GHOST"]
    assert "Digest scheduled" in answers["U0ADMIN"] and "Digest scheduled" in answers["U0OWNER"]
    assert sorted(c.params["user"] for c in slack.calls_to("users.info")) == sorted(answers)
    assert all(c.token == slack.bot_token for c in slack.calls_to("users.info"))
    for who in answers:  # changes get no share button
        assert all(b["type"] != "actions" for b in responses(slack, who)[0]["blocks"])


async def test_allow_listed_user_changes_digests_without_asking_slack(seeded_service, slack):
    bot = await started(seeded_service, slack_settings(seeded_service, slack, slack_admins=("U0LISTED",)))
    try:
        await send_command(bot, slack, "digest schedule 9am", "listed", user_id="U0LISTED")
        await send_command(bot, slack, "digest pause", "paused", user_id="U0LISTED")
        assert "Digest scheduled" in block_texts((await wait_responses(slack, "listed"))[0]["blocks"])
        assert "Digests paused" in block_texts((await wait_responses(slack, "paused"))[0]["blocks"])
        assert slack.calls_to("users.info") == []
    finally:
        await bot.stop()


async def test_digest_now_posts_for_an_admin_and_previews_for_a_member(http_bot, slack, seeded_service):
    """users.info decides: a member's `digest now` posts nothing and leaves the documents pending."""
    for doc in seeded_service.store.documents():  # cached summaries: this test is about who may post
        summary = Summary(f"{doc.title} in brief.", (KeyPoint("A point.", "A point."),), "English",
                          seeded_service.models.summarizer_id)
        seeded_service.store.save_summary(doc.content_hash, summary.model_id, seeded_service.settings.language,
                                          summary.to_json(), summary.language)
    slack.users.update({"U0MEMBER": user("U0MEMBER"), "U0ADMIN": user("U0ADMIN", admin=True)})
    await send_command(http_bot, slack, "digest now", "member", user_id="U0MEMBER", channel_id="C0DIGEST")
    member = block_texts((await wait_responses(slack, "member"))[0]["blocks"])
    assert "Posting a digest is for admins; nothing was posted" in member and "What Ilya Saw" in member
    assert slack.calls_to("chat.postMessage") == []
    await send_command(http_bot, slack, "digest now", "admin", user_id="U0ADMIN", channel_id="C0DIGEST")
    assert "Posted the digest (5 new documents)" in block_texts((await wait_responses(slack, "admin"))[0]["blocks"])
    posted = "".join(block_texts(c.params["blocks"]) for c in slack.calls_to("chat.postMessage"))
    assert "What Ilya Saw" in posted
    assert [c.params["user"] for c in slack.calls_to("users.info")] == ["U0MEMBER", "U0ADMIN"]


@pytest.mark.slow  # summarizes every seed document for the digest
async def test_digest_is_posted_through_the_poster_and_failures_show_in_digest_status(http_bot, slack, seeded_service):
    channel = dict(channel_id="C0DIGEST", user_id="U0ADMIN")  # posting a digest is for admins
    slack.users.update({"U0ADMIN": user("U0ADMIN", admin=True)})
    slack.script("chat.postMessage", body={"ok": False, "error": "not_in_channel"})
    await send_command(http_bot, slack, "digest now", "now1", **channel)
    [failed] = await wait_responses(slack, "now1", timeout=180)
    assert "not_in_channel" in block_texts(failed["blocks"])
    await send_command(http_bot, slack, "digest status", "status1", **channel)
    [status] = await wait_responses(slack, "status1")
    assert "failed" in block_texts(status["blocks"]) and "not_in_channel" in block_texts(status["blocks"])

    await send_command(http_bot, slack, "digest now", "now2", **channel)
    [posted] = await wait_responses(slack, "now2", timeout=180)
    assert "Posted the digest" in block_texts(posted["blocks"])
    posts = [c for c in slack.calls_to("chat.postMessage") if c.params["channel"] == "C0DIGEST"][1:]
    everything = "".join(block_texts(p.params["blocks"]) for p in posts)
    for doc in seeded_service.store.documents():
        assert doc.title.replace("&", "&amp;") in everything
    run_key = posts[0].params["metadata"]["event_payload"]["run"]
    target = Target("slack", TEAM_ID, "C0DIGEST")
    assert await http_bot.poster.find(target, run_key) == slack.messages[-len(posts)]["ts"]
    assert await http_bot.poster.find(target, "some-other-run") is None
    slack.script("conversations.history", body={"ok": False, "error": "missing_scope"})
    assert await http_bot.poster.find(target, "some-other-run") == "unverified:some-other-run"
