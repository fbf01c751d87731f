"""A fake Slack for protocol-level tests, bound to 127.0.0.1 only.

`FakeSlack` serves, on one random port:
  * the Web API (`/api/<method>`): auth.test, chat.postMessage, chat.postEphemeral, users.info,
    conversations.history, files.info, apps.connections.open, oauth.v2.access; every call is recorded
    (`FakeSlack.calls`) and any method can be given scripted answers (`FakeSlack.script`) such as a 429
    with Retry-After;
  * uploaded files (`FakeSlack.add_file`) at their `url_private` (`/files-pri/...`), recorded as method
    "url_private": the bytes for a bearer bot token, else Slack's sign-in page (HTML, status 200), as Slack does;
  * `response_url` endpoints (`/response/<name>`), recorded as method "response_url";
  * a Socket Mode websocket (`/link`) that sends envelopes and records the app's acks.
Helpers build the payloads Slack sends and sign HTTP requests the way Slack does.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode

from aiohttp import ClientSession, WSMsgType, web

HOST = "127.0.0.1"
TEAM_ID = "T0TEAM"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
DEFAULT_WAIT = 10.0


@dataclass
class Call:
    """One request the fake received. `token` (bearer token, or `id:secret` of Basic auth) is kept
    apart from `headers`, which never hold it."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    token: str | None
    at: float  # time.monotonic() on arrival


@dataclass
class Ack:
    """A Socket Mode acknowledgement sent back by the app."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float


@dataclass
class Scripted:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers: HMAC-SHA256 over `v0:{ts}:{body}`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


async def post_signed(
    url: str,
    body: str,
    *,
    secret: str,
    content_type: str,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = DEFAULT_WAIT,
) -> tuple[int, str, float]:
    """POST `body` signed with `secret`; returns (status, response text, seconds until the response)."""
    all_headers = {"Content-Type": content_type, **sign(secret, body, timestamp), **(headers or {})}
    async with ClientSession() as session:
        start = time.monotonic()
        async with asyncio.timeout(timeout):
            async with session.post(url, data=body.encode(), headers=all_headers) as resp:
                text = await resp.text()
        return resp.status, text, time.monotonic() - start


# ---- payloads as Slack sends them -------------------------------------------------------------

def slash_command(
    text: str,
    *,
    response_url: str,
    user_id: str = "U0USER",
    channel_id: str = "C0CHAN",
    command: str = "/digestbot",
    team_id: str = TEAM_ID,
) -> dict[str, str]:
    """The fields of a slash command (form-encoded over HTTP, a dict in a Socket Mode envelope)."""
    return {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "team_domain": "example",
        "channel_id": channel_id,
        "channel_name": "general",
        "user_id": user_id,
        "user_name": "someone",
        "command": command,
        "text": text,
        "api_app_id": "A0APP",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"trigger.{uuid.uuid4().hex[:8]}",
    }


def event_callback(event: dict[str, Any], *, event_id: str | None = None, team_id: str = TEAM_ID) -> dict[str, Any]:
    """An Events API `event_callback` wrapping `event`."""
    return {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "api_app_id": "A0APP",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [
            {"enterprise_id": None, "team_id": team_id, "user_id": BOT_USER_ID, "is_bot": True,
             "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
    }


def app_mention(text: str, *, ts: str, thread_ts: str | None = None, user: str = "U0USER",
                channel: str = "C0CHAN", files: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An app_mention event; `files` (from `FakeSlack.add_file`) were attached to the message."""
    event = {"type": "app_mention", "user": user, "text": text, "ts": ts, "channel": channel, "event_ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    if files:
        event.update(files=files, upload=False)
    return event


def file_shared(file_id: str, *, channel: str = "D0DM", user: str = "U0USER") -> dict[str, Any]:
    """A file_shared event: it names the file only; its details come from files.info."""
    return {"type": "file_shared", "channel_id": channel, "file_id": file_id, "user_id": user,
            "file": {"id": file_id}, "event_ts": f"{time.time():.6f}"}


def block_action(
    action: dict[str, Any],
    *,
    response_url: str,
    user_id: str = "U0USER",
    channel_id: str = "C0CHAN",
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A `block_actions` payload for a button pressed on an ephemeral message."""
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": "someone", "name": "someone", "team_id": team_id},
        "api_app_id": "A0APP",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": channel_id,
                      "is_ephemeral": True},
        "trigger_id": f"trigger.{uuid.uuid4().hex[:8]}",
        "team": {"id": team_id, "domain": "example"},
        "channel": {"id": channel_id, "name": "general"},
        "response_url": response_url,
        "actions": [{"type": "button", "block_id": "b1", "action_ts": str(time.time()), **action}],
    }


def form_body(fields: dict[str, str]) -> str:
    return urlencode(fields)


def interactive_body(payload: dict[str, Any]) -> str:
    """Interactive payloads travel as a form with one `payload` field holding JSON."""
    return urlencode({"payload": json.dumps(payload)})


def user(user_id: str, *, admin: bool = False, owner: bool = False, name: str = "someone") -> dict[str, Any]:
    """A users.info `user` object."""
    return {
        "id": user_id,
        "team_id": TEAM_ID,
        "name": name,
        "real_name": name.title(),
        "is_admin": admin,
        "is_owner": owner,
        "is_primary_owner": False,
        "is_bot": False,
    }


# ---- the fake server ----------------------------------------------------------------------------

class FakeSlack:
    """Web API + response_url + Socket Mode server. Use `async with FakeSlack(...) as slack:`."""

    def __init__(self, *, bot_token: str = "xoxb-test", app_token: str = "xapp-test",
                 client_id: str = "111.222", client_secret: str = "client-secret"):
        self.bot_token = bot_token
        self.app_token = app_token
        self.client_credentials = f"{client_id}:{client_secret}"  # what oauth.v2.access must be sent
        self.calls: list[Call] = []
        self.acks: list[Ack] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.installed_bot_tokens: dict[str, str] = {}  # token -> team id, from oauth.v2.access
        self.messages: list[dict[str, Any]] = []  # every message chat.postMessage accepted, oldest first
        self.files: dict[str, dict[str, Any]] = {}  # file id -> files.info `file` object
        self._file_bytes: dict[str, bytes] = {}
        self._file_ids = itertools.count(1)
        self.files_readable = True  # False: url_private answers as if the app lacked the files:read scope
        self._scripts: dict[str, list[Scripted]] = {}
        self._ts = itertools.count(1)
        self._changed = asyncio.Condition()
        self._sockets: list[web.WebSocketResponse] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # lifecycle
    async def __aenter__(self) -> "FakeSlack":
        app = web.Application()
        app.add_routes([
            web.route("*", "/api/{method}", self._api),
            web.post("/response/{name}", self._response_url),
            web.get("/files-pri/{team_file}/{name}", self._url_private),
            web.get("/link", self._socket),
        ])
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc) -> None:
        for ws in list(self._sockets):
            await ws.close()
        await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.port}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"http://{HOST}:{self.port}/response/{name}"

    # scripting and inspection
    def script(self, method: str, *, status: int = 200, body: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> None:
        """Queue one answer for the next call of `method` (after that, the default answer again)."""
        self._scripts.setdefault(method, []).append(Scripted(status, body, headers or {}))

    def add_file(self, name: str, data: bytes, mimetype: str, *, size: int | None = None,
                 user: str = "U0USER") -> dict[str, Any]:
        """Upload a file; returns its `file` object (`size` is what Slack reports, default the real size)."""
        file_id = f"F{next(self._file_ids):08d}"
        url = f"http://{HOST}:{self.port}/files-pri/{TEAM_ID}-{file_id}/{name}"
        self._file_bytes[file_id] = data
        self.files[file_id] = {
            "id": file_id, "created": int(time.time()), "name": name, "title": name, "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1], "user": user, "size": len(data) if size is None else size,
            "is_external": False, "is_public": False, "url_private": url, "url_private_download": f"{url}?download",
            "permalink": f"https://example.slack.com/files/{user}/{file_id}/{name}",
        }
        return self.files[file_id]

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = DEFAULT_WAIT) -> Any:
        """Wait (bounded) until `predicate()` is truthy, re-checking whenever a call or ack arrives."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result

    async def wait_calls(self, method: str, count: int = 1, timeout: float = DEFAULT_WAIT) -> list[Call]:
        return await self.wait_for(lambda: len(self.calls_to(method)) >= count and self.calls_to(method), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # socket mode
    @property
    def connected(self) -> int:
        """How many Socket Mode connections are open."""
        return len(self._sockets)

    async def wait_connected(self, timeout: float = DEFAULT_WAIT) -> web.WebSocketResponse:
        return await self.wait_for(lambda: self._sockets and self._sockets[-1], timeout)

    async def send_envelope(self, type_: str, payload: dict[str, Any], **extra: Any) -> str:
        """Send an envelope on the newest connection; returns its envelope id."""
        ws = await self.wait_connected()
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": type_, "payload": payload, **extra}
        await ws.send_str(json.dumps(envelope))
        return envelope_id

    async def wait_ack(self, envelope_id: str, timeout: float = DEFAULT_WAIT) -> Ack:
        return await self.wait_for(lambda: next((a for a in self.acks if a.envelope_id == envelope_id), None), timeout)

    # handlers
    async def _record(self, method: str, request: web.Request, **extra: Any) -> Call:
        params: dict[str, Any] = {**request.query, **extra}
        body = await request.read()
        if body:
            if request.content_type == "application/json":
                params.update(json.loads(body))
            else:
                params.update((await request.post()).items())
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme == "Basic":
            credentials = base64.b64decode(credentials).decode()
        token = credentials or params.pop("token", None)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        call = Call(method, params, headers, token, time.monotonic())
        self.calls.append(call)
        await self._notify()
        return call

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = await self._record(method, request)
        if self._scripts.get(method):
            s = self._scripts[method].pop(0)
            return web.json_response(s.body or {"ok": s.status == 200}, status=s.status, headers=s.headers)
        return web.json_response(self._default_answer(call))

    def _default_answer(self, call: Call) -> dict[str, Any]:
        method, p = call.method, call.params
        if method == "oauth.v2.access":
            return self._oauth_access(call)
        expected = self.app_token if method == "apps.connections.open" else None
        if call.token is None:
            return {"ok": False, "error": "not_authed"}
        if call.token != (expected or self.bot_token) and call.token not in self.installed_bot_tokens:
            return {"ok": False, "error": "invalid_auth"}
        team_id = self.installed_bot_tokens.get(call.token, TEAM_ID)
        if method == "auth.test":
            return {"ok": True, "url": "https://example.slack.com/", "team": "Example", "user": "digestbot",
                    "team_id": team_id, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}
        if method == "chat.postMessage":
            message = {"type": "message", "channel": p.get("channel"), "text": p.get("text"),
                       "ts": f"1700000000.{next(self._ts):06d}", "metadata": p.get("metadata")}
            self.messages.append(message)
            return {"ok": True, "channel": message["channel"], "ts": message["ts"], "message": message}
        if method == "conversations.history":
            found = [m for m in reversed(self.messages) if m["channel"] == p.get("channel")]
            if p.get("include_all_metadata") not in (True, "true", "1"):
                found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
            return {"ok": True, "messages": found[: int(p.get("limit", 100))], "has_more": False}
        if method == "files.info":
            found = self.files.get(p.get("file", ""))
            return {"ok": True, "file": found} if found else {"ok": False, "error": "file_not_found"}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1700000000.{next(self._ts):06d}"}
        if method == "users.info":
            found = self.users.get(p.get("user", ""))
            return {"ok": True, "user": found} if found else {"ok": False, "error": "user_not_found"}
        if method == "apps.connections.open":
            return {"ok": True, "url": f"ws://{HOST}:{self.port}/link?ticket={uuid.uuid4().hex}"}
        return {"ok": False, "error": "unknown_method"}

    def _oauth_access(self, call: Call) -> dict[str, Any]:
        if call.token != self.client_credentials:
            return {"ok": False, "error": "invalid_client_id"}
        if call.params.get("code") != "good-code":
            return {"ok": False, "error": "invalid_code"}
        token = f"xoxb-installed-{len(self.installed_bot_tokens) + 1}"
        self.installed_bot_tokens[token] = "T0OTHER"
        return {
            "ok": True, "app_id": "A0APP", "authed_user": {"id": "U0INSTALLER"}, "scope": "commands,chat:write",
            "token_type": "bot", "access_token": token, "bot_user_id": BOT_USER_ID,
            "team": {"id": "T0OTHER", "name": "Other"}, "enterprise": None, "is_enterprise_install": False,
        }

    async def _url_private(self, request: web.Request) -> web.Response:
        call = await self._record("url_private", request, _path=request.path)
        file_id = request.match_info["team_file"].removeprefix(f"{TEAM_ID}-")
        if not self.files_readable or (call.token != self.bot_token and call.token not in self.installed_bot_tokens):
            return web.Response(text="<!DOCTYPE html><title>Slack</title>Sign in to continue", content_type="text/html")
        if file_id not in self._file_bytes:
            return web.Response(status=404, text="file not found")
        return web.Response(body=self._file_bytes[file_id], headers={"Content-Type": self.files[file_id]["mimetype"]})

    async def _response_url(self, request: web.Request) -> web.Response:
        await self._record("response_url", request, _name=request.match_info["name"])
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP"}}))
        self._sockets.append(ws)
        await self._notify()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "envelope_id" in data:
                    self.acks.append(Ack(data["envelope_id"], data.get("payload"), time.monotonic()))
                    await self._notify()
        finally:
            self._sockets.remove(ws)
            await self._notify()
        return ws
