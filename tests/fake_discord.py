"""A fake Discord (REST API v10 + gateway) on 127.0.0.1 that the real discord.py client talks to.

Tests point the bot at it through `DISCORD_API_BASE` / `DISCORD_GATEWAY_URL`. It speaks the wire
protocol: gateway HELLO / IDENTIFY -> READY + GUILD_CREATE / heartbeat ACK / RESUME -> RESUMED,
zlib-stream compressed when the client asks for it, and the REST routes a bot uses (channel
history is served from the messages it recorded). Every REST request is recorded as a `Call` (the
token is never stored); tests dispatch INTERACTION_CREATE / MESSAGE_CREATE frames with the builders
below and script failures with `fail()`. Files attached with `attachment()` are served like
Discord's CDN, at signed-looking URLs outside the API.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1420070400000
TOKEN = "fake-bot-token.not-a-secret.0123456789"
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
# What an ordinary member may do: view, send messages, read history, use app commands, threads.
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 31) | (1 << 35) | (1 << 38)


@dataclass
class Call:
    """One REST request the bot made. `path` is relative to /api/v10; `json` is the parsed body."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    authorized: bool  # carried `Authorization: Bot <the token>`
    at: float  # time.monotonic() when it arrived

    def __repr__(self) -> str:
        return f"<Call {self.method} {self.path}>"


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


@dataclass
class _Session:
    ws: web.WebSocketResponse
    compressor: Any | None
    shard: tuple[int, int] = (0, 1)
    session_id: str = ""
    seq: int = 0
    identified: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FakeDiscord:
    """`async with FakeDiscord() as fake:` serves on a random 127.0.0.1 port until the block ends."""

    def __init__(self, *, shards: int = 1, heartbeat_interval_ms: int = 41250) -> None:
        self.shards = shards
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.heartbeats: list[float] = []  # time.monotonic() of each heartbeat the client sent
        self._ids = itertools.count(1)
        self.app_id = self.snowflake()
        self.bot_user = self._user(self.app_id, "digestbot", bot=True)
        self.owner = self._user(self.snowflake(), "owner")
        self.guild_id = self.snowflake()
        self.channel_id = self.snowflake()
        self.channels: dict[str, dict[str, Any]] = {
            self.channel_id: self._text_channel(self.channel_id, "general"),
        }
        self.messages: dict[str, dict[str, Any]] = {}
        self.files: dict[str, tuple[bytes, str]] = {}  # attachment id -> (bytes, content type), on the "CDN"
        self.downloads: list[str] = []  # CDN paths fetched, in order
        self.commands: dict[str | None, list[dict[str, Any]]] = {}  # guild id (None = global) -> commands
        self.calls: list[Call] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.sessions: list[_Session] = []
        self._failures: list[_Failure] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ----------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> "FakeDiscord":
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_get("/attachments/{channel}/{attachment}/{filename}", self._cdn)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for session in list(self.sessions):
            await session.ws.close()
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def snowflake(self) -> str:
        return str(((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | next(self._ids))

    # ----------------------------------------------------------------- test helpers
    async def wait_for(self, method: str, pattern: str, *, count: int = 1, timeout: float = 5.0) -> Call:
        """The `count`-th call whose path fully matches `pattern`, waiting up to `timeout` seconds."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.calls_to(method, pattern)) >= count), timeout
            )
        return self.calls_to(method, pattern)[count - 1]

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        rx = re.compile(pattern)
        return [c for c in self.calls if c.method == method and rx.fullmatch(c.path)]

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Until every shard identified and got READY."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self._live()) >= self.shards), timeout)

    async def wait_heartbeats(self, count: int, timeout: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.heartbeats) >= count), timeout)

    def fail(self, method: str, pattern: str, status: int, body: dict[str, Any] | None = None,
             *, headers: dict[str, str] | None = None, times: int = 1) -> None:
        """The next `times` matching requests get this error instead of being served."""
        body = body or {"message": f"{status}", "code": 0}
        self._failures.append(_Failure(method, re.compile(pattern), status, body, headers or {}, times))

    def rate_limit(self, method: str, pattern: str, retry_after: float, *, times: int = 1) -> None:
        """Script a 429 exactly as Discord sends one (body, Retry-After and the `Via` header)."""
        self.fail(method, pattern, 429,
                  {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
                  headers={"Retry-After": str(retry_after), "Via": "1.1 google",
                           "X-RateLimit-Scope": "user", "X-RateLimit-Remaining": "0"},
                  times=times)

    def delete_channel(self, channel_id: str) -> None:
        self.channels.pop(channel_id, None)

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH frame to the shard that owns the event's guild."""
        guild_id = data.get("guild_id")
        shard_id = (int(guild_id) >> 22) % self.shards if guild_id else 0
        session = next(s for s in self._live() if s.shard[0] == shard_id)
        await self._dispatch(session, event, data)

    async def kill_session(self, code: int = 4000) -> None:
        """Drop every gateway connection with a resumable close code, as Discord does on restarts."""
        for session in list(self.sessions):
            await session.ws.close(code=code)

    # ----------------------------------------------------------------- payload builders
    def member(self, *, name: str = "alice", permissions: int = MEMBER_PERMISSIONS,
               user_id: str | None = None) -> dict[str, Any]:
        return {
            "user": self._user(user_id or self.snowflake(), name),
            "roles": [], "joined_at": "2024-01-01T00:00:00+00:00", "deaf": False, "mute": False,
            "flags": 0, "pending": False, "nick": None, "permissions": str(permissions),
        }

    def attachment(self, filename: str, data: bytes, content_type: str | None = None, *,
                   size: int | None = None) -> dict[str, Any]:
        """An uploaded file, served on the fake CDN; pass it as a `slash()` option value.

        `size` is what Discord reports (default: the real size)."""
        attachment_id = self.snowflake()
        self.files[attachment_id] = (data, content_type or "application/octet-stream")
        url = (f"http://127.0.0.1:{self.port}/attachments/{self.channel_id}/{attachment_id}/{filename}"
               f"?ex=6650a1b2&is=664f5032&hm={attachment_id}")  # the CDN signs its links; they expire
        return {"id": attachment_id, "filename": filename, "size": len(data) if size is None else size,
                "url": url, "proxy_url": url, **({"content_type": content_type} if content_type else {})}

    def slash(self, name: str, options: dict[str, Any] | None = None, *, member: dict[str, Any] | None = None,
              channel_id: str | None = None, focused: str | None = None) -> dict[str, Any]:
        """INTERACTION_CREATE data for `/name` (a "group leaf" name makes a subcommand).

        Option values are strings, booleans, or attachments from `attachment()` (sent, as Discord
        does, as an id plus the attachment in `resolved`). With `focused` it is an autocomplete
        interaction for that option instead.
        """
        attachments = {v["id"]: v for v in (options or {}).values() if isinstance(v, dict)}
        opts = [{"name": k, "type": 11, "value": v["id"]} if isinstance(v, dict) else
                {"name": k, "type": 5 if isinstance(v, bool) else 3, "value": v,
                 **({"focused": True} if k == focused else {})}
                for k, v in (options or {}).items()]
        top, _, leaf = name.partition(" ")
        if leaf:
            opts = [{"name": leaf, "type": 1, "options": opts}]
        registered = next((c for cmds in self.commands.values() for c in cmds if c["name"] == top), None)
        data = {"id": registered["id"] if registered else self.snowflake(), "name": top, "type": 1,
                "options": opts}
        if registered and registered.get("guild_id"):
            data["guild_id"] = registered["guild_id"]
        if attachments:
            data["resolved"] = {"attachments": attachments}
        return self._interaction(4 if focused else 2, data, member=member, channel_id=channel_id)

    def button(self, custom_id: str, message: dict[str, Any], *, member: dict[str, Any] | None = None
               ) -> dict[str, Any]:
        """INTERACTION_CREATE data for a click on a button of `message` (a message the bot sent)."""
        return self._interaction(3, {"custom_id": custom_id, "component_type": 2}, member=member,
                                 channel_id=message["channel_id"], message=message)

    def message(self, content: str, *, mentions_bot: bool = True, channel_id: str | None = None,
                author: dict[str, Any] | None = None) -> dict[str, Any]:
        """MESSAGE_CREATE data for a member's message (kept so threads can start from it).

        Without the message-content intent Discord still sends content for messages that mention
        the bot, so the full content is included exactly then.
        """
        author_member = author or self.member()
        msg = self._message(channel_id or self.channel_id, content, author_member["user"],
                            mentions=[self.bot_user] if mentions_bot else [])
        msg["guild_id"] = self.guild_id
        msg["member"] = {k: v for k, v in author_member.items() if k not in ("user", "permissions")}
        self.messages[msg["id"]] = msg
        return msg

    def sent_messages(self, channel_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages.values()
                if m["channel_id"] == channel_id and m["author"]["id"] == self.app_id]

    # ----------------------------------------------------------------- internals: data
    @staticmethod
    def _user(user_id: str, name: str, *, bot: bool = False) -> dict[str, Any]:
        return {"id": user_id, "username": name, "global_name": name, "discriminator": "0",
                "avatar": None, "bot": bot, "public_flags": 0}

    def _text_channel(self, channel_id: str, name: str) -> dict[str, Any]:
        return {"id": channel_id, "type": 0, "guild_id": self.guild_id, "name": name, "position": 0,
                "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
                "last_message_id": None, "rate_limit_per_user": 0, "default_auto_archive_duration": 1440}

    def _guild(self) -> dict[str, Any]:
        everyone = {"id": self.guild_id, "name": "@everyone", "permissions": str(MEMBER_PERMISSIONS),
                    "position": 0, "color": 0, "hoist": False, "managed": False, "mentionable": False,
                    "flags": 0}
        return {
            "id": self.guild_id, "name": "Test Guild", "icon": None, "owner_id": self.owner["id"],
            "roles": [everyone], "emojis": [], "stickers": [], "features": [], "member_count": 2,
            "large": False, "unavailable": False, "joined_at": "2024-01-01T00:00:00+00:00",
            "channels": list(c for c in self.channels.values() if c["type"] == 0),
            "threads": [], "members": [{**self.member(name="digestbot", user_id=self.app_id),
                                         "user": self.bot_user}],
            "voice_states": [], "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "preferred_locale": "en-US", "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "premium_tier": 0, "nsfw_level": 0,
            "system_channel_flags": 0, "afk_timeout": 300,
        }

    def _interaction(self, kind: int, data: dict[str, Any], *, member: dict[str, Any] | None,
                     channel_id: str | None, message: dict[str, Any] | None = None) -> dict[str, Any]:
        channel = self.channels[channel_id or self.channel_id]
        payload = {
            "id": self.snowflake(), "application_id": self.app_id, "type": kind, "data": data,
            "guild_id": self.guild_id, "guild": {"id": self.guild_id, "locale": "en-US", "features": []},
            "channel_id": channel["id"], "channel": channel, "member": member or self.member(),
            "token": f"itoken-{self.snowflake()}", "version": 1, "locale": "en-US",
            "guild_locale": "en-US", "app_permissions": str(MEMBER_PERMISSIONS),
            "entitlements": [], "authorizing_integration_owners": {"0": self.guild_id},
            "context": 0, "attachment_size_limit": 10 * 1024 * 1024,
        }
        if message is not None:
            payload["message"] = message
        return payload

    def _message(self, channel_id: str, content: str, author: dict[str, Any], *,
                 mentions: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
        body = body or {}
        return {
            "id": self.snowflake(), "channel_id": channel_id, "author": author, "content": content,
            "timestamp": "2024-01-01T00:00:00+00:00", "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": mentions or [], "mention_roles": [],
            "attachments": [], "embeds": body.get("embeds") or [], "components": body.get("components") or [],
            "pinned": False, "type": 0, "flags": body.get("flags", 0) or 0,
            **({"message_reference": body["message_reference"]} if body.get("message_reference") else {}),
        }

    # ----------------------------------------------------------------- internals: gateway
    def _live(self) -> list[_Session]:
        return [s for s in self.sessions if s.identified.is_set() and not s.ws.closed]

    async def _send(self, session: _Session, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload)
        async with session.lock:  # frames of one zlib stream must not interleave
            if session.compressor is None:
                await session.ws.send_str(raw)
            else:
                data = session.compressor.compress(raw.encode()) + session.compressor.flush(zlib.Z_SYNC_FLUSH)
                await session.ws.send_bytes(data)

    async def _dispatch(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        await self._send(session, {"op": 0, "t": event, "s": session.seq, "d": data})

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        compress = request.query.get("compress")
        if compress not in (None, "zlib-stream"):
            await ws.close(code=4000, message=b"unsupported compression")  # zstd is not installed
            return ws
        session = _Session(ws, zlib.compressobj() if compress else None)
        self.sessions.append(session)
        await self._send(session, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                                  "s": None, "t": None})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            op, data = frame.get("op"), frame.get("d")
            if op == 1:
                async with self._changed:
                    self.heartbeats.append(time.monotonic())
                    self._changed.notify_all()
                await self._send(session, {"op": 11, "d": None, "s": None, "t": None})
            elif op == 2:
                await self._identify(session, data)
            elif op == 6:
                await self._resume(session, data)
        return ws

    async def _identify(self, session: _Session, data: dict[str, Any]) -> None:
        if data.get("token") != TOKEN:
            await session.ws.close(code=4004, message=b"Authentication failed.")
            return
        self.identifies.append({k: v for k, v in data.items() if k != "token"})
        session.shard = tuple(data.get("shard") or (0, 1))  # type: ignore[assignment]
        session.session_id = f"session-{self.snowflake()}"
        owns_guild = (int(self.guild_id) >> 22) % session.shard[1] == session.shard[0]
        await self._dispatch(session, "READY", {
            "v": 10, "user": self.bot_user, "session_id": session.session_id, "session_type": "normal",
            "resume_gateway_url": self.gateway_url, "shard": list(session.shard),
            "guilds": [{"id": self.guild_id, "unavailable": True}] if owns_guild else [],
            "application": {"id": self.app_id, "flags": 0}, "private_channels": [], "relationships": [],
        })
        if owns_guild:
            await self._dispatch(session, "GUILD_CREATE", self._guild())
        async with self._changed:
            session.identified.set()
            self._changed.notify_all()

    async def _resume(self, session: _Session, data: dict[str, Any]) -> None:
        old = next((s for s in self.sessions if s.session_id == data.get("session_id")), None)
        if old is None or data.get("token") != TOKEN:
            await self._send(session, {"op": 9, "d": False, "s": None, "t": None})  # invalid session
            return
        self.resumes.append({k: v for k, v in data.items() if k != "token"})
        session.shard, session.session_id, session.seq = old.shard, old.session_id, old.seq
        self.sessions.remove(old)
        await self._dispatch(session, "RESUMED", {})
        async with self._changed:
            session.identified.set()
            self._changed.notify_all()

    # ----------------------------------------------------------------- internals: REST
    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw and request.content_type == "application/json" else raw.decode()
        call = Call(request.method, path, dict(request.query), body,
                    request.headers.get("Authorization") == f"Bot {TOKEN}", time.monotonic())
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        for failure in self._failures:
            if failure.times > 0 and failure.method == call.method and failure.pattern.fullmatch(path):
                failure.times -= 1
                return self._json(failure.body, failure.status, failure.headers)
        token_free = path.startswith(("/webhooks/", "/interactions/"))
        if not (token_free or call.authorized):
            return self._json({"message": "401: Unauthorized", "code": 0}, 401)
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if method == call.method and match:
                return await handler(call, *match.groups())
        return self._json({"message": "404: Not Found", "code": 0}, 404)

    def _routes(self) -> list[tuple[str, str, Any]]:
        snowflake, token = r"(\d+)", r"([^/]+)"
        return [
            ("GET", r"/gateway/bot", self._gateway_bot),
            ("GET", r"/users/@me", self._me),
            ("GET", r"/oauth2/applications/@me", self._application),
            ("PUT", rf"/applications/{snowflake}/commands", self._put_commands),
            ("PUT", rf"/applications/{snowflake}/guilds/{snowflake}/commands", self._put_commands),
            ("POST", rf"/interactions/{snowflake}/{token}/callback", self._callback),
            ("POST", rf"/webhooks/{snowflake}/{token}", self._followup),
            ("PATCH", rf"/webhooks/{snowflake}/{token}/messages/([^/]+)", self._edit_webhook_message),
            ("GET", rf"/channels/{snowflake}", self._get_channel),
            ("GET", rf"/channels/{snowflake}/messages", self._history),
            ("POST", rf"/channels/{snowflake}/messages", self._create_message),
            ("POST", rf"/channels/{snowflake}/messages/{snowflake}/threads", self._thread_from_message),
            ("POST", rf"/channels/{snowflake}/typing", self._typing),
        ]

    @staticmethod
    def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        """Exactly `Content-Type: application/json` (no charset), as Discord sends and discord.py expects."""
        return web.Response(body=json.dumps(data).encode(), status=status,
                            headers={"Content-Type": "application/json", **(headers or {})})

    def _unknown(self, what: str, code: int) -> web.Response:
        return self._json({"message": f"Unknown {what}", "code": code}, 404)

    async def _gateway_bot(self, call: Call) -> web.Response:
        return self._json({"url": self.gateway_url, "shards": self.shards, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}})

    async def _me(self, call: Call) -> web.Response:
        return self._json({**self.bot_user, "flags": 0, "mfa_enabled": False, "verified": True})

    async def _application(self, call: Call) -> web.Response:
        return self._json({"id": self.app_id, "name": "digestbot", "icon": None, "description": "",
                           "bot_public": False, "bot_require_code_grant": False, "owner": self.owner,
                           "verify_key": "0" * 64, "flags": 0, "team": None,
                           "interactions_endpoint_url": None, "bot": self.bot_user})

    async def _put_commands(self, call: Call, app_id: str, guild_id: str | None = None) -> web.Response:
        stored = [{"id": self.snowflake(), "application_id": app_id, "version": self.snowflake(), "type": 1,
                   **({"guild_id": guild_id} if guild_id else {}), **cmd} for cmd in call.json]
        self.commands[guild_id] = stored
        return self._json(stored)

    async def _callback(self, call: Call, interaction_id: str, token: str) -> web.Response:
        kind, data = call.json["type"], call.json.get("data") or {}
        result: dict[str, Any] = {"interaction": {"id": interaction_id, "type": 2}}
        if kind in (4, 5):
            msg = self._message(self.channel_id, data.get("content", ""), self.bot_user, body=data)
            if kind == 5:
                msg["flags"] |= 128  # LOADING: the "is thinking..." placeholder
            self.messages[msg["id"]] = msg
            self.messages[f"original:{token}"] = msg
            result["interaction"].update(response_message_id=msg["id"], response_message_loading=kind == 5,
                                         response_message_ephemeral=bool(msg["flags"] & 64))
            result["resource"] = {"type": kind, "message": msg}
        else:
            result["resource"] = {"type": kind}
        return self._json(result)

    async def _followup(self, call: Call, app_id: str, token: str) -> web.Response:
        original = self.messages.get(f"original:{token}")
        channel_id = original["channel_id"] if original else self.channel_id
        msg = self._message(channel_id, call.json.get("content", ""), self.bot_user, body=call.json)
        self.messages[msg["id"]] = msg
        return self._json(msg)

    async def _edit_webhook_message(self, call: Call, app_id: str, token: str, message_id: str) -> web.Response:
        msg = self.messages.get(f"original:{token}" if message_id == "@original" else message_id)
        if msg is None:
            return self._unknown("Message", 10008)
        msg.update({k: v for k, v in call.json.items() if k in ("content", "embeds", "components")})
        msg["flags"] &= ~128
        return self._json(msg)

    async def _get_channel(self, call: Call, channel_id: str) -> web.Response:
        channel = self.channels.get(channel_id)
        return self._json(channel) if channel else self._unknown("Channel", 10003)

    async def _create_message(self, call: Call, channel_id: str) -> web.Response:
        if channel_id not in self.channels:
            return self._unknown("Channel", 10003)
        msg = self._message(channel_id, call.json.get("content", ""), self.bot_user, body=call.json)
        self.messages[msg["id"]] = msg
        return self._json(msg)

    async def _history(self, call: Call, channel_id: str) -> web.Response:
        """GET /channels/{id}/messages: the channel's messages newest first, paged by `before`/`after`.
        Ephemeral messages are not part of a channel's history."""
        if channel_id not in self.channels:
            return self._unknown("Channel", 10003)
        before, after = int(call.query.get("before", 0)) or None, int(call.query.get("after", 0))
        unique = {m["id"]: m for m in self.messages.values()}.values()  # "original:…" keys alias messages
        found = sorted((m for m in unique if m["channel_id"] == channel_id and not m["flags"] & 64
                        and (before is None or int(m["id"]) < before) and int(m["id"]) > after),
                       key=lambda m: int(m["id"]), reverse=True)
        return self._json(found[: min(int(call.query.get("limit", 50)), 100)])

    async def _cdn(self, request: web.Request) -> web.Response:
        """An attachment's bytes, as cdn.discordapp.com serves them (no bot token needed)."""
        self.downloads.append(request.path)
        found = self.files.get(request.match_info["attachment"])
        if found is None:
            return web.Response(status=404, text="404: Not Found")
        data, content_type = found
        return web.Response(body=data, headers={"Content-Type": content_type})

    async def _typing(self, call: Call, channel_id: str) -> web.Response:
        if channel_id not in self.channels:
            return self._unknown("Channel", 10003)
        return web.Response(status=204)

    async def _thread_from_message(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        parent = self.channels.get(channel_id)
        if parent is None:
            return self._unknown("Channel", 10003)
        if message_id not in self.messages:
            return self._unknown("Message", 10008)
        thread = {  # Discord gives a thread started from a message the message's id
            "id": message_id, "type": 11, "guild_id": self.guild_id, "parent_id": channel_id,
            "name": call.json["name"], "owner_id": self.app_id, "member_count": 1, "message_count": 0,
            "rate_limit_per_user": 0, "last_message_id": None, "flags": 0,
            "thread_metadata": {"archived": False, "auto_archive_duration": call.json.get(
                "auto_archive_duration", 1440), "archive_timestamp": "2024-01-01T00:00:00+00:00",
                "locked": False},
        }
        self.channels[message_id] = thread
        live = [s for s in self._live() if s.shard[0] == (int(self.guild_id) >> 22) % self.shards]
        for session in live:
            await self._dispatch(session, "THREAD_CREATE", {**thread, "newly_created": True})
        return self._json(thread, 201)
