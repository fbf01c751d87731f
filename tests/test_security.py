"""Security checks: Slack request signatures, admin-only commands, tokens in logs, private URLs.

Covered elsewhere, not repeated here: a wrong signing secret and a stale timestamp
(tests/test_slack.py); `digest schedule` refused to a Slack member (tests/test_slack.py); every admin
command refused server-side to a Discord member without Manage Server, and the Discord token absent
from logs across a reconnect (tests/test_discord.py); feed commands and `add` limited to admins, and
thirteen private/local address forms refused by the Service (tests/test_feeds.py, tests/test_fetch.py).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
import time

import pytest
from aiohttp import ClientSession

from bot.adapters.console import respond
from bot.adapters.runner import RedactSecrets, install_log_redaction
from bot.adapters.slack_app import SHARE_ACTION, SlackAdapter
from bot.cli import main as cli_main
from bot.config import Settings
from bot.core.values import Actor, Request, Target
from bot.core.registry import load_commands
from tests.fake_slack import (
    BOT_USER_ID, HOST, TEAM_ID, FakeSlack, app_mention, block_action, event_callback, form_body, interactive_body,
    post_signed, sign, slash_command, user,
)
from tests.local_web import LocalWeb, web_server  # noqa: F401 - fixture
from tests.test_feeds import rss
from tests.test_hostile import fingerprint
from tests.test_slack import (  # noqa: F401 - fixtures
    FORM, SECRET, block_texts, events_url, http_bot, responses, send_command, slack, wait_responses,
)

COMMANDS = load_commands()

MEMBER = "U0MEMBER"
ADMIN = Actor("U0ADMIN", "Ada", is_admin=True)
CHANNEL = Target("slack", TEAM_ID, "C0CHAN")  # where tests/fake_slack.py's slash commands come from


# -- Slack request signatures ---------------------------------------------------------------------------
def _other_version(body: str) -> dict[str, str]:
    headers = sign(SECRET, body)
    return {**headers, "X-Slack-Signature": "v1=" + headers["X-Slack-Signature"][3:]}


FORGED = {
    "signed-over-another-body": lambda body: sign(SECRET, body.replace("sources", "status")),
    "no-signature-headers": lambda body: {},
    "signature-without-timestamp": lambda body: {"X-Slack-Signature": sign(SECRET, body)["X-Slack-Signature"]},
    "timestamp-six-minutes-ahead": lambda body: sign(SECRET, body, int(time.time()) + 6 * 60),
    "another-signature-version": _other_version,
    "signed-with-the-empty-secret": lambda body: sign("", body),
}


@pytest.mark.parametrize("forge", FORGED.values(), ids=FORGED.keys())
async def test_forged_slack_requests_get_401_and_nothing_runs(http_bot, slack, forge):
    body = form_body(slash_command("sources", response_url=slack.response_url()))
    headers = {"Content-Type": FORM, **forge(body)}
    async with ClientSession() as session, asyncio.timeout(10):
        async with session.post(events_url(http_bot), data=body.encode(), headers=headers) as response:
            assert response.status == 401
    assert slack.calls == []
    # a genuine request afterwards is answered, so the forged one would have been by now
    await send_command(http_bot, slack, "status", "genuine")
    await wait_responses(slack, "genuine")
    assert [c.params["_name"] for c in slack.calls_to("response_url")] == ["genuine"]


# -- admin-only commands --------------------------------------------------------------------------------
ADMIN_REQUESTS = {  # args that succeed for an admin, in an order in which each one does
    "feed list": {},
    "digest pause": {},
    "digest resume": {},
    "digest schedule": {"time": "10:15", "timezone": "Europe/Berlin"},
    "digest filter": {"rules": "include:compost"},
    "feed add": {"url": "{second_feed}"},
    "feed remove": {"feed": "1"},
}


def test_every_admin_command_is_checked_here():
    assert sorted(ADMIN_REQUESTS) == sorted(name for name, cmd in COMMANDS.items() if cmd.admin)


def serve_feeds(server: LocalWeb) -> tuple[str, str]:
    return tuple(server.page(f"/feed{n}.xml", rss([], title=f"Harbour news {n}"), content_type="application/rss+xml")
                 for n in (1, 2))


@pytest.mark.parametrize("platform", ["console", "slack", "discord"])
async def test_admin_commands_are_refused_to_members_and_change_nothing(service, web_server, platform):
    service.settings = dataclasses.replace(service.settings, allow_private_urls=True)  # feeds on 127.0.0.1
    target = Target(platform, "w1", "c1")
    first_feed, second_feed = serve_feeds(web_server)
    for name, args in (("digest schedule", {"time": "09:00"}), ("feed add", {"url": first_feed})):
        assert (await service.handle(Request(name, args, ADMIN, target))).ok
    requests_before, before = len(web_server.requests), fingerprint(service.store)
    schedule = service.store.schedules.schedule_for(target)

    member = Actor("m1", "Mallory", is_admin=False)
    for name, args in ADMIN_REQUESTS.items():
        args = {k: v.format(second_feed=second_feed) for k, v in args.items()}
        refused = await service.handle(Request(name, args, member, target))
        assert not refused.ok and "admins only" in refused.text and "\n" not in refused.text, name
    assert fingerprint(service.store) == before and service.store.schedules.schedule_for(target) == schedule
    assert len(web_server.requests) == requests_before  # `feed add` fetched nothing for a member

    for name, args in ADMIN_REQUESTS.items():  # the very same requests, from an admin
        args = {k: v.format(second_feed=second_feed) for k, v in args.items()}
        assert (await service.handle(Request(name, args, ADMIN, target))).ok, name


async def test_every_admin_command_is_refused_to_a_slack_member_end_to_end(http_bot, slack, seeded_service,
                                                                          web_server):
    seeded_service.settings = dataclasses.replace(seeded_service.settings, allow_private_urls=True)
    first_feed, second_feed = serve_feeds(web_server)
    assert (await seeded_service.handle(Request("digest schedule", {"time": "09:00"}, ADMIN, CHANNEL))).ok
    assert (await seeded_service.handle(Request("feed add", {"url": first_feed}, ADMIN, CHANNEL))).ok
    requests_before, before = len(web_server.requests), fingerprint(seeded_service.store)
    slack.users[MEMBER] = user(MEMBER)
    lines = {name: " ".join([name, *(v.format(second_feed=second_feed) for v in args.values())])
             for name, args in ADMIN_REQUESTS.items()}
    for name, line in lines.items():
        assert (await send_command(http_bot, slack, line, name, user_id=MEMBER))[0] == 200
    for name in lines:
        [reply] = await wait_responses(slack, name)
        assert "admins only" in block_texts(reply["blocks"]), name
    assert sorted(c.params["user"] for c in slack.calls_to("users.info")) == [MEMBER] * len(lines)
    assert fingerprint(seeded_service.store) == before and len(web_server.requests) == requests_before


async def test_a_crafted_share_button_cannot_run_an_admin_command(http_bot, slack, seeded_service):
    assert (await seeded_service.handle(Request("digest schedule", {"time": "09:00"}, ADMIN, CHANNEL))).ok
    before = fingerprint(seeded_service.store)
    for name, command in (("crafted", "digest pause"), ("genuine", "status")):
        value = json.dumps({"c": command, "a": {}})
        payload = block_action({"action_id": SHARE_ACTION, "value": value}, response_url=slack.response_url(name))
        status, _, _ = await post_signed(events_url(http_bot), interactive_body(payload), secret=SECRET,
                                         content_type=FORM)
        assert status == 200
    await wait_responses(slack, "genuine", 2)  # shared in the channel, then the ephemeral removed
    assert responses(slack, "crafted") == []
    assert fingerprint(seeded_service.store) == before and not seeded_service.store.schedules.schedule_for(CHANNEL).paused


# -- tokens never reach the logs ------------------------------------------------------------------------
TOKEN = "xoxb-" + secrets.token_hex(16)
APP_TOKEN = "xapp-" + secrets.token_hex(16)
SIGNING_SECRET = secrets.token_hex(16)


def with_secrets(base: Settings, fake: FakeSlack | None = None, **changes) -> Settings:
    endpoints = {"slack_api_url": fake.api_url, "slack_port": 0} if fake else {}
    return dataclasses.replace(base, slack_bot_token=TOKEN, slack_signing_secret=SIGNING_SECRET, **endpoints,
                               **changes)


@pytest.fixture
def redacting(caplog):
    """DEBUG logs from every library, through the redaction `digestbot run` installs; removed afterwards."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    for handler in logging.getLogger().handlers:
        for found in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
            handler.removeFilter(found)


def formatted(caplog) -> str:
    """Every record as a handler writes it, tracebacks included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


def test_log_redaction_replaces_tokens_in_messages_and_arguments(redacting):
    install_log_redaction(with_secrets(Settings.from_env({})))
    log = logging.getLogger("redaction-check")
    log.warning("connecting with %s", TOKEN)
    log.info(f"header Authorization: Bearer {TOKEN}")
    log.debug("payload %r", {"secret": SIGNING_SECRET})
    ours = [record.getMessage() for record in redacting.records if record.name == "redaction-check"]
    assert ours == ["connecting with [redacted]", "header Authorization: Bearer [redacted]",
                    "payload {'secret': '[redacted]'}"]


def test_log_redaction_covers_exception_text(redacting):
    install_log_redaction(with_secrets(Settings.from_env({})))
    try:
        raise ValueError(f"https://hooks.example/?token={TOKEN} refused")
    except ValueError:
        logging.getLogger("redaction-check").exception("request failed")
    assert "request failed" in formatted(redacting) and TOKEN not in formatted(redacting)


async def eventually(predicate, timeout: float = 10.0) -> None:
    """Poll (bounded) for something that leaves no trace on the fake server, such as a log record."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_slack_traffic_in_http_and_socket_mode_logs_no_token_or_secret(seeded_service, redacting):
    async with FakeSlack(bot_token=TOKEN, app_token=APP_TOKEN) as fake:
        for mode in ("http", "socket"):
            changes = {"slack_app_token": APP_TOKEN} if mode == "socket" else {}
            settings = with_secrets(seeded_service.settings, fake, **changes)
            install_log_redaction(settings)
            bot = SlackAdapter(seeded_service, settings)
            await bot.start(host=HOST)
            try:
                await slack_traffic(bot, fake, mode, redacting)
            finally:
                await bot.stop()
    logged = formatted(redacting)
    assert any(r.name.startswith("slack_sdk") and r.levelno == logging.DEBUG for r in redacting.records)
    assert "U0GHOST" in logged and "invalid_auth" in logged  # the failures were logged, the secrets not
    for secret in (TOKEN, APP_TOKEN, SIGNING_SECRET):
        assert secret not in logged and secret not in redacting.text


async def slack_traffic(bot: SlackAdapter, fake: FakeSlack, mode: str, caplog) -> None:
    """A slash command, an admin command whose users.info fails, a mention, and a refused post."""
    async def deliver(kind: str, payload: dict) -> None:
        if mode == "socket":
            await fake.wait_ack(await fake.send_envelope(kind, payload))
            return
        body, content_type = ((form_body(payload), FORM) if kind == "slash_commands"
                              else (json.dumps(payload), "application/json"))
        status, _, _ = await post_signed(f"http://{HOST}:{bot.port}/slack/events", body, secret=SIGNING_SECRET,
                                         content_type=content_type)
        assert status == 200

    for text, user_id in (("status", "U0USER"), ("digest pause", "U0GHOST")):
        name = f"{mode}-{text}"
        await deliver("slash_commands", slash_command(text, response_url=fake.response_url(name), user_id=user_id))
        await fake.wait_for(lambda: responses(fake, name))
    for event_id in ("EvOK", "EvREFUSED"):
        if event_id == "EvREFUSED":
            fake.script("chat.postMessage", body={"ok": False, "error": "invalid_auth"})
        posts = len(fake.calls_to("chat.postMessage"))
        mention = app_mention(f"<@{BOT_USER_ID}>", ts="1700000001.000100")
        await deliver("events_api", event_callback(mention, event_id=f"{event_id}-{mode}"))
        await fake.wait_calls("chat.postMessage", posts + 1)
    await eventually(lambda: sum(r.name == "bot.adapters.slack_app" and "invalid_auth" in r.getMessage()
                                 for r in caplog.records) == (1 if mode == "http" else 2))


# -- URL fetching refuses private addresses ---------------------------------------------------------------
def test_console_and_cli_refuse_local_addresses_without_sending_a_request(service, web_server, settings,
                                                                          monkeypatch, capsys):
    assert service.settings.allow_private_urls is False  # the default
    page = web_server.page("/secret", "<html><body><p>internal admin page</p></body></html>")
    feed = web_server.page("/feed.xml", rss([]), content_type="application/rss+xml")
    before = fingerprint(service.store)
    for line in (f"/add {page}", f"/add http://localhost:{web_server.port}/secret", f"/feed add {feed}"):
        reply = asyncio.run(respond(service, line))
        assert not reply.ok and "private or local address" in reply.text and "\n" not in reply.text, line

    monkeypatch.setenv("DIGESTBOT_DB", settings.db_path)
    monkeypatch.delenv("DIGESTBOT_ALLOW_PRIVATE_URLS", raising=False)
    for argv in (["add", page], ["feed", "add", feed]):
        assert cli_main(argv) == 1
        [error] = [line for line in capsys.readouterr().err.splitlines() if line.strip() and line[:3] != "== "]
        assert "private or local address" in error
    assert web_server.requests == [] and fingerprint(service.store) == before
