"""A chat platform that exists only in the tests: "plain webhook", JSON messages in, JSON messages out.

It proves the seam for a new platform: this adapter, its renderer (`render` below) and one
registration line (`register`), nothing in bot/ changed and nothing in bot/ aware of it. It uses only
public seams: the registry (`parse`, and the `accepts_file` / `shareable` attributes),
`Service.handle`, `Service.mention`, `Service.check_upload` / `Service.upload`, the Reply type and
the shared layout in render_common; its poster's `find` answers an unreadable history through
bot.core.posting like the real posters.

An incoming message is `{"user", "admin", "team", "channel", "text", "file"?}`, where `file` is
`{"name", "content_type", "size", "url", "data"}` with `data` in base64. An outgoing one is
`{"text": plain text, "links": [{"label", "url"}], "actions": [...]}`: the receiving side shows
`text` literally and `links` as clickable labels, so the renderer's only escaping concern is links.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from bot.adapters.render_common import disguised, layout, one_line, web_url
from bot.core.values import Actor, Reply, Request, Target, UserError
from bot.core.posting import counted_as_posted
from bot.core.registry import Command
from bot.core.service import Service

PLATFORM = "webhook"
MENTION = "@digestbot"
TEXT_LIMIT = 1500  # characters of text in one outgoing message
LABEL_LIMIT = 200


# -- the renderer: syntax, escaping and splitting only ------------------------------------------------
def link(label: str, url: str | None, path: str) -> tuple[str, dict[str, str] | None]:
    """The text shown for a citation and its clickable link: none for a file path, and the real URL as
    the label when the title names another host."""
    label = one_line(label, LABEL_LIMIT)
    target = web_url(url)
    if target is None:
        return f"{label} ({one_line(path, 300)})", None
    return label, {"label": target if disguised(label, target) else label, "url": target}


def split(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, cut at a line or a space in the later half when possible."""
    pieces = []
    while len(text) > limit:
        cut = next((i for sep in ("\n", " ") if (i := text.rfind(sep, limit // 2, limit)) != -1), limit)
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text.strip():
        pieces.append(text)
    return pieces


def render(reply: Reply, actions: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """All messages one reply needs: the text split within TEXT_LIMIT, links on the message that names
    them, actions on the last message."""
    lines = [f"# {one_line(reply.title, LABEL_LIMIT)}"] if reply.title else []
    links: list[tuple[int, dict[str, str]]] = []  # (line it belongs to, link)
    for part in layout(reply):
        if part.kind == "body":
            lines.append(("Sorry: " if not reply.ok else "") + part.text)
        elif part.kind == "sources":
            for source in part.sources:
                shown, target = link(source.title, source.url, source.path)
                lines.append(f"[{source.n}] {shown}")
                links += [(len(lines) - 1, target)] if target else []
        else:
            shown, target = link(part.item.title, part.item.url, part.item.path)
            lines.append(f"{part.n}. {shown}" + (f"\n{part.item.summary}" if part.item.summary else ""))
            links += [(len(lines) - 1, target)] if target else []
    messages: list[dict[str, Any]] = []
    for number, line in enumerate(lines):
        for piece in split(line):
            if messages and len(messages[-1]["text"]) + 1 + len(piece) <= TEXT_LIMIT:
                messages[-1]["text"] += "\n" + piece
            else:
                messages.append({"text": piece, "links": [], "actions": []})
        messages[-1]["links"] += [target for at, target in links if at == number]
    messages = messages or [{"text": "(no content)", "links": [], "actions": []}]
    messages[-1]["actions"] = actions or []
    return messages


# -- the adapter: platform messages -> core calls -> rendered replies ---------------------------------
def actions_for(cmd: Command, reply: Reply) -> list[dict[str, str]]:
    """Buttons the registry asks for: sharing a shareable command's reply in the channel."""
    return [{"action": "share", "command": cmd.name}] if cmd.shareable and reply.ok else []


class WebhookAdapter:
    def __init__(self, service: Service) -> None:
        self.service = service

    async def receive(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """The messages that answer one incoming message."""
        actor = Actor(str(payload.get("user", "")), is_admin=payload.get("admin") is True)
        target = Target(PLATFORM, str(payload.get("team", "local")), str(payload.get("channel", "")))
        text = str(payload.get("text", "")).strip()
        if text.lower().startswith(MENTION):
            return render(await self.service.mention(text[len(MENTION):], actor, target))
        if not text.startswith("/"):
            return render(Reply(f"Type /help for commands, or {MENTION} followed by a question.", ok=False))
        try:
            name, args = self.service.commands.parse(text)
        except UserError as exc:
            return render(Reply(str(exc), ok=False, title="Sorry"))
        cmd = self.service.commands[name]
        if payload.get("file") is not None and cmd.accepts_file:
            reply = await self._upload(actor, payload["file"])
        else:
            reply = await self.service.handle(Request(name, args, actor, target))
        return render(reply, actions_for(cmd, reply))

    async def _upload(self, actor: Actor, file: Any) -> Reply:
        """"Download" the file (decode it) once the core's policy allows it, and forward the bytes."""
        if not isinstance(file, dict):
            return Reply("The file could not be read; not indexed.", ok=False, title="Sorry")
        name = str(file.get("name") or "upload")
        size = file.get("size") if isinstance(file.get("size"), int) else None
        try:
            self.service.check_upload(actor, name, size)
            data = base64.b64decode(str(file.get("data", "")), validate=True)
        except binascii.Error:
            return Reply(f"{name}: the file could not be read; not indexed.", ok=False, title="Sorry")
        except UserError as exc:
            return Reply(str(exc), ok=False, title="Sorry")
        return await self.service.upload(actor, data, name=name, content_type=str(file.get("content_type", "")),
                                         url=str(file.get("url") or f"https://hooks.example/files/{name}"))


class WebhookPoster:
    """Digests for webhook channels: kept in `posted`, as a webhook endpoint would receive them."""

    def __init__(self, history_readable: bool = True) -> None:
        self.posted: list[tuple[Target, Reply, list[dict[str, Any]]]] = []
        self.history_readable = history_readable

    async def post(self, target: Target, reply: Reply) -> str:
        self.posted.append((target, reply, render(reply)))
        return f"{target.key}#{len(self.posted)}"

    async def find(self, target: Target, run_key: str) -> str | None:
        if not self.history_readable:
            return counted_as_posted(target, run_key, "the endpoint keeps no history")
        return next((f"{target.key}#{k}" for k, (where, reply, _) in enumerate(self.posted, 1)
                     if where == target and (reply.data or {}).get("run") == run_key), None)


def register(service: Service) -> tuple[WebhookAdapter, WebhookPoster]:
    """The one registration line a platform needs: its poster, so the outbox can post digests there."""
    poster = WebhookPoster()
    service.register_poster(PLATFORM, poster)
    return WebhookAdapter(service), poster
