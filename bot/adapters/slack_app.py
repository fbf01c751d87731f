"""Slack adapter: Slack events -> core Requests, core Replies -> Block Kit (render_slack). No product logic.

Surface (see slack-manifest.yml):
  * one slash command, `/digestbot <command> [args]`, carries every registry command
    (`/digestbot search tokenizer since:2024-01-01`, `/digestbot digest pause`), parsed by the core's
    `Registry.parse`; `ack()` comes at once, the work runs in a Bolt lazy listener and the reply
    is ephemeral, lookups with a "Share in channel" button;
  * `@digestbot question` (app_mention) is an `ask`, answered in the mention's thread;
  * a file shared with the bot (attached to an @mention, or sent to it in a direct message:
    `file_shared`) is downloaded with the bot token and indexed like `add` does, answered in place;
  * digests reach channels through `SlackPoster` (slack_poster.py), which the outbox calls.
Socket Mode when SLACK_APP_TOKEN is set, else HTTP on SLACK_PORT at /slack/events (signed requests).
In HTTP mode a request is screened before Bolt sees it: malformed or missing signature headers and bad
signatures get 401, a body that is not UTF-8 or that Bolt cannot read (bad JSON, odd types) gets 400; refusals
are logged without tracebacks, one line at first and then a count at most once a minute (RefusalLog).
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Sequence

import aiohttp
import yarl
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.render_slack import Button, SlackMessage, escape, plain_text, render
from bot.adapters.slack_poster import ChannelPacer, SlackPoster
from bot.config import Settings
from bot.core.fetch import TIMEOUT_S
from bot.core.values import Actor, PostError, Reply, Request, Target, UserError
from bot.core.registry import Registry
from bot.core.service import Service
from bot.storage.installations import slack_oauth_stores

log = logging.getLogger(__name__)

SLASH_COMMAND = "/digestbot"
EVENTS_PATH = "/slack/events"
SHARE_ACTION = "digestbot_share"
BOT_SCOPES = ("app_mentions:read", "channels:history", "chat:write", "chat:write.public", "commands",
              "files:read", "groups:history", "users:read")
BOT_EVENTS = ("app_mention", "file_shared")
FILES_HOST = "files.slack.com"  # where url_private points; the bot token is sent nowhere else (but the API's host)
DEFAULT_API_URL = "https://slack.com/api/"
RESPONSES_PER_URL = 5  # Slack accepts at most five messages through one response_url
BUTTON_VALUE_LIMIT = 2000
REFUSAL_LOG_INTERVAL = 60.0  # seconds between log lines about refused HTTP requests
_TIMESTAMP = re.compile(r"\d{1,12}")  # X-Slack-Request-Timestamp: Unix seconds
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")  # X-Slack-Signature: HMAC-SHA256 in hex


class RefusalLog:
    """Counts refused HTTP requests by reason and logs them without flooding: the first refusal at once,
    then everything refused since the last line, at most once per `interval` seconds."""

    def __init__(self, interval: float = REFUSAL_LOG_INTERVAL, clock=time.monotonic):
        self.interval = interval
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._logged_at: float | None = None

    def note(self, reason: str) -> None:
        self.counts[reason] += 1
        now = self.clock()
        if self._logged_at is not None and now - self._logged_at < self.interval:
            return
        reasons = ", ".join(f"{why} ×{n}" for why, n in self.counts.most_common())
        log.warning("refused %d Slack HTTP request(s): %s (next report in %.0f s at the earliest)",
                    self.counts.total(), reasons, self.interval)
        self.counts.clear()
        self._logged_at = now


def build_app(settings: Settings) -> AsyncApp:
    """Bolt app on `settings.slack_api_url`; multi-workspace OAuth (installations kept by the storage
    package, in the bot's database) when a client id and secret are set, else the single bot token."""
    oauth = None
    if settings.slack_client_id and settings.slack_client_secret:
        installations, states = slack_oauth_stores(settings.db_path, settings.slack_client_id)
        oauth = AsyncOAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret,
            scopes=list(BOT_SCOPES),
            installation_store=installations,
            state_store=states,
        )
    client = AsyncWebClient(token=None if oauth else settings.slack_bot_token,
                            base_url=settings.slack_api_url or DEFAULT_API_URL)
    return AsyncApp(name="digestbot", client=client, signing_secret=settings.slack_signing_secret or "",
                    oauth_settings=oauth)


def _parse(commands: Registry, text: str) -> tuple[str, dict[str, str]]:
    """`/digestbot` text -> (command name, args); an empty text asks for help."""
    return commands.parse(plain_text(text) or "help")


class SlackAdapter:
    """Owns the Bolt app, its listeners and (once started) the Socket Mode client or HTTP server."""

    def __init__(self, service: Service, settings: Settings, pacer: ChannelPacer | None = None):
        if not (settings.slack_bot_token or (settings.slack_client_id and settings.slack_client_secret)):
            raise ValueError("Slack needs SLACK_BOT_TOKEN, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET")
        if not (settings.slack_app_token or settings.slack_signing_secret):
            raise ValueError("Slack needs SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)")
        self.service = service
        self.settings = settings
        self.app = build_app(settings)
        self.poster = SlackPoster(self.app, pacer)
        self.port: int | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        secret = settings.slack_signing_secret
        self._verifier = SignatureVerifier(secret) if secret else None  # None: events come over Socket Mode
        self.refusals = RefusalLog()
        self.app.command(SLASH_COMMAND)(ack=self._ack_command, lazy=[self._run_command])
        self.app.event("app_mention")(ack=self._ack, lazy=[self._answer_mention])
        self.app.event("file_shared")(ack=self._ack, lazy=[self._add_dm_file])
        self.app.action(SHARE_ACTION)(ack=self._ack, lazy=[self._share])

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, host: str = "0.0.0.0") -> None:
        """Register the digest poster; connect Socket Mode, or serve HTTP (also for the OAuth pages)."""
        self.service.register_poster("slack", self.poster)
        if self.settings.slack_app_token:
            self._socket = AsyncSocketModeHandler(self.app, self.settings.slack_app_token)
            await self._socket.connect_async()
        if not self.settings.slack_app_token or self.app.oauth_flow:
            web_app = self.app.web_app(EVENTS_PATH, self.settings.slack_port)
            web_app.middlewares.append(self._screen)
            self._runner = web.AppRunner(web_app, handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, host, self.settings.slack_port)
            await site.start()
            self.port = self._runner.addresses[0][1]
            log.info("Slack HTTP endpoint on %s:%s%s", host, self.port, EVENTS_PATH)

    async def stop(self) -> None:
        if self._socket:
            await self._socket.close_async()
        if self._runner:
            await self._runner.cleanup()

    # -- HTTP requests -----------------------------------------------------------------------------
    @web.middleware
    async def _screen(self, request: web.Request, handler) -> web.StreamResponse:
        """Events-path POSTs reach Bolt only with well-formed, valid signature headers; a body Bolt cannot
        turn into a request (its parsing raises before any listener runs) is a 400, not a 500."""
        if request.method != "POST" or request.path != EVENTS_PATH:
            return await handler(request)
        if self._verifier is None:
            return self._refuse(401, "no signing secret: events arrive over Socket Mode")
        body = await request.read()  # cached: Bolt reads it again
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not (_TIMESTAMP.fullmatch(timestamp) and _SIGNATURE.fullmatch(signature)):
            return self._refuse(401, "missing or malformed signature headers")
        try:
            body.decode("utf-8")  # Slack sends UTF-8; the verifier and Bolt both decode it
        except UnicodeDecodeError:
            return self._refuse(400, "body is not UTF-8")
        if not self._verifier.is_valid(body, timestamp, signature):
            return self._refuse(401, "bad or stale signature")
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - listener errors never get here: Bolt handles those itself
            return self._refuse(400, f"unreadable body ({type(exc).__name__})")

    def _refuse(self, status: int, reason: str) -> web.Response:
        self.refusals.note(reason)
        return web.Response(status=status, text=reason)

    # -- slash command ---------------------------------------------------------------------------
    async def _ack_command(self, ack, command) -> None:
        try:
            name, _ = _parse(self.service.commands, command.get("text", ""))
        except UserError as exc:
            await ack(text=escape(str(exc)))
            return
        if self.service.commands[name].slow:
            await ack("_Working on it…_")
        else:
            await ack()

    async def _run_command(self, command, client, respond) -> None:
        try:
            name, args = _parse(self.service.commands, command.get("text", ""))
        except UserError:
            return  # already answered by the ack
        cmd = self.service.commands[name]
        # users.info is asked only when the answer matters: admin and admin-aware commands, and /add under
        # DIGESTBOT_ADD=admins
        needs_admin = cmd.admin or cmd.admin_aware or (cmd.name == "add" and self.settings.add_policy != "everyone")
        admin = needs_admin and await self._is_admin(client, command["user_id"])
        actor = Actor(command["user_id"], command.get("user_name", ""), admin)
        target = Target("slack", command["team_id"], command["channel_id"])
        reply = await self.service.handle(Request(name, args, actor, target))
        share = json.dumps({"c": name, "a": args})
        buttons = [Button("Share in channel", SHARE_ACTION, share)] if (
            reply.ok and cmd.shareable and len(share) <= BUTTON_VALUE_LIMIT) else []
        await self._respond(respond, render(reply, buttons), response_type="ephemeral")

    async def _is_admin(self, client: AsyncWebClient, user_id: str) -> bool:
        """Listed in SLACK_ADMINS, or a workspace admin/owner according to users.info (asked server-side)."""
        if user_id in self.settings.slack_admins:
            return True
        try:
            user = (await client.users_info(user=user_id))["user"]
        except SlackApiError as exc:
            log.warning("users.info for %s failed: %s", user_id, exc.response.get("error"))
            return False
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))

    @staticmethod
    async def _respond(respond, messages: Sequence[SlackMessage], **extra) -> None:
        if len(messages) > RESPONSES_PER_URL:
            log.warning("reply needs %d messages; Slack takes %d per response_url", len(messages), RESPONSES_PER_URL)
        for message in messages[:RESPONSES_PER_URL]:
            await respond(**message.kwargs(), **extra)

    # -- share button ----------------------------------------------------------------------------
    @staticmethod
    async def _ack(ack) -> None:
        """Events and button presses only need the bare acknowledgement; the work is lazy."""
        await ack()

    async def _share(self, body, action, respond) -> None:
        """Run the lookup again for the person who pressed the button and post it in the channel."""
        value = json.loads(action["value"])
        cmd = self.service.commands.get(value.get("c", ""))
        if cmd is None or not cmd.shareable:
            return
        who = body["user"]
        target = Target("slack", body["team"]["id"], body["channel"]["id"])
        actor = Actor(who["id"], who.get("username", ""))
        reply = await self.service.handle(Request(cmd.name, value.get("a", {}), actor, target))
        if not reply.ok:
            await self._respond(respond, render(reply), response_type="ephemeral", replace_original=False)
            return
        footer = f"Shared by {who.get('username') or who.get('name') or who['id']}"
        await self._respond(respond, render(reply, footer=footer), response_type="in_channel", replace_original=False)
        await respond(delete_original=True)

    # -- mentions --------------------------------------------------------------------------------
    async def _answer_mention(self, body, event, client, context) -> None:
        """Answer once per event id (Slack retries carry the same id), in the mention's thread: files
        attached to the mention are indexed, else its text is a question."""
        if not self.service.first_delivery(f"slack:event:{body['event_id']}"):
            return
        thread = event.get("thread_ts") or event["ts"]
        if event.get("files"):
            replies = [await self._add_file(client, file, event.get("user", "")) for file in event["files"]]
        else:
            question = plain_text(event.get("text", ""), drop_user=context.bot_user_id)
            target = Target("slack", body.get("team_id") or context.team_id, event["channel"], thread)
            replies = [await self.service.mention(question, Actor(event.get("user", "")), target)]
        await self._post_replies(client, event["channel"], replies, thread)

    # -- files -----------------------------------------------------------------------------------
    async def _add_dm_file(self, body, event, client) -> None:
        """A file sent to the bot in a direct message. Files shared in channels are indexed only when
        the bot is mentioned with them (`_answer_mention`): the bot does not index a channel's files."""
        if not event.get("channel_id", "").startswith("D"):
            return
        if not self.service.first_delivery(f"slack:event:{body['event_id']}"):
            return
        reply = await self._add_file(client, event.get("file") or {"id": event["file_id"]}, event.get("user_id", ""))
        await self._post_replies(client, event["channel_id"], [reply], None)

    async def _add_file(self, client: AsyncWebClient, file: dict, user_id: str) -> Reply:
        """Download a shared file with the bot token for the core to index (any failure is the reply)."""
        try:
            admin = self.service.settings.add_policy != "everyone" and await self._is_admin(client, user_id)
            actor = Actor(user_id, is_admin=admin)
            self.service.check_upload(actor, _file_name(file), file.get("size"))  # before downloading anything
            if not file.get("url_private"):  # events may carry only the id (e.g. file_shared)
                file = (await client.files_info(file=file["id"]))["file"]
            data = await self._download(client, file, actor)
        except UserError as exc:
            return Reply(str(exc), ok=False, title="Sorry")
        except SlackApiError as exc:
            log.warning("files.info for %s failed: %s", file.get("id"), exc.response.get("error"))
            return Reply("That file could not be read from Slack; not indexed.", ok=False, title="Sorry")
        return await self.service.upload(actor, data, name=_file_name(file), content_type=file.get("mimetype") or "",
                                         url=file.get("permalink") or file["url_private"])

    async def _download(self, client: AsyncWebClient, file: dict, actor: Actor) -> bytes:
        """A file's bytes from `url_private` within TIMEOUT_S, stopped as soon as the core's upload
        limit is passed. The bot token is only sent to Slack's file host (or the configured API host,
        e.g. a test double)."""
        name, url = _file_name(file), yarl.URL(file["url_private"])
        self.service.check_upload(actor, name, file.get("size"))  # files.info may have told the size
        if url.origin() not in (yarl.URL(f"https://{FILES_HOST}"), yarl.URL(client.base_url).origin()):
            raise UserError(f"{name}: not a Slack file link; not indexed.")
        chunks, size = [], 0
        try:
            async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session,
                        session.get(url, headers={"Authorization": f"Bearer {client.token}"}) as response):
                # Without files:read Slack answers with its sign-in page instead of the file.
                if response.status != 200 or (response.content_type == "text/html"
                                              and file.get("mimetype") != "text/html"):
                    raise UserError(f"{name}: Slack did not hand over the file (is the files:read scope "
                                    "granted?); not indexed.")
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    self.service.check_upload(actor, name, size)
                    chunks.append(chunk)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("downloading Slack file %s failed: %s", file.get("id"), exc)
            raise UserError(f"{name}: the file could not be downloaded; not indexed.") from None
        return b"".join(chunks)

    async def _post_replies(self, client: AsyncWebClient, channel: str, replies: Sequence[Reply],
                            thread: str | None) -> None:
        try:
            for reply in replies:
                await self.poster.send(client, channel, render(reply), thread_ts=thread)
        except PostError as exc:
            log.warning("could not answer in %s: %s", channel, exc)


def _file_name(file: dict) -> str:
    return file.get("name") or file.get("title") or file["id"]


async def run(service: Service, settings: Settings) -> None:
    """Run the Slack adapter until cancelled."""
    adapter = SlackAdapter(service, settings)
    await adapter.start()
    try:
        await asyncio.Event().wait()
    finally:
        await adapter.stop()
