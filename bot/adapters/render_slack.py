"""Reply -> Slack Block Kit messages. All Slack escaping, link syntax and splitting live here.

Everything relayed (answer text, titles, summaries, paths) is escaped (`&`, `<`, `>`), so no
relayed text can form `<!here>`, `<!channel>`, `<!everyone>`, `<@U…>` or `<!subteam^…>`, and
mrkdwn text objects are `verbatim` so Slack does not auto-link names either. A link whose label names
another host than its URL (render_common.disguised) is shown as the label and the plain `<url>`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from bot.adapters.render_common import disguised, layout, one_line, web_url
from bot.core.values import DigestItem, Reply, Source

SECTION_LIMIT = 3000  # characters in one section's text
MAX_BLOCKS = 50  # blocks in one message
MAX_MESSAGE_CHARS = 12000  # keeps one message readable; longer replies continue in the next message
CONTEXT_ELEMENTS = 10  # elements in one context block
TITLE_LIMIT = 150
FALLBACK_LIMIT = 150


@dataclass(frozen=True)
class Button:
    text: str
    action_id: str
    value: str


@dataclass
class SlackMessage:
    """One message: `text` is the (escaped) notification fallback shown where blocks are not."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def kwargs(self) -> dict[str, Any]:
        """Arguments for chat.postMessage / chat.postEphemeral / response_url: no unfurls, no name parsing."""
        return {"text": self.text, "blocks": self.blocks, "unfurl_links": False, "unfurl_media": False}


def escape(text: str) -> str:
    """Slack's three control characters; after this no `<…>` sequence (mention or link) can exist."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_BOLD = re.compile(r"\*\*(.+?)\*\*")


def mrkdwn(markdown: str) -> str:
    """The core's markdown (**bold**, _italic_, `code`) as escaped Slack mrkdwn."""
    return _BOLD.sub(r"*\1*", escape(markdown))


def _title(text: str) -> str:
    """A title safe inside `<url|…>`: one line, escaped, no `|` that could end the label early."""
    return escape(one_line(text, TITLE_LIMIT)).replace("|", "¦")


def _url(url: str | None) -> str | None:
    """An http(s) URL usable inside `<…|…>` (its `&` escaped), or None when it is anything else."""
    target = web_url(url)
    return target.replace("&", "&amp;") if target else None


def link(url: str | None, label: str, path: str | None = None) -> str:
    """`<url|label>` for web URLs (`label <url>` when the label names another host); otherwise the
    label followed by the (escaped) path."""
    target = _url(url)
    if target:
        return f"{_title(label)} <{target}>" if disguised(label, url) else f"<{target}|{_title(label)}>"
    return _title(label) + (f" — {escape(one_line(path, 300))}" if path else "")


def split_text(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split already-escaped text into pieces <= limit: at a paragraph, line or word break in the
    second half of the window when there is one, else a hard cut that never splits an `&amp;` entity."""
    pieces = []
    while len(text) > limit:
        window = text[:limit]
        cut = next((i for sep in ("\n\n", "\n", " ") if (i := window.rfind(sep)) >= limit // 2), limit)
        if cut == limit and (amp := window.rfind("&", limit - 5)) != -1 and ";" not in window[amp:]:
            cut = amp
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text.strip():
        pieces.append(text.rstrip())
    return pieces


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def _context(texts: Sequence[str]) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t, "verbatim": True} for t in texts]}


def _source_blocks(sources: Sequence[Source]) -> list[dict[str, Any]]:
    refs = [link(s.url, f"[{s.n}] {s.title}", None if s.url else s.path) for s in sources]
    return [_context(refs[i : i + CONTEXT_ELEMENTS]) for i in range(0, len(refs), CONTEXT_ELEMENTS)]


def _item_blocks(item: DigestItem) -> list[dict[str, Any]]:
    heading = "*" + link(item.url, item.title) + "*"
    body = split_text(escape(item.summary), SECTION_LIMIT - len(heading) - 1) if item.summary.strip() else []
    blocks = [_section("\n".join([heading, *body[:1]]))] + [_section(t) for t in body[1:]]
    meta = [escape(m) for m in (item.published, None if item.url else item.path) if m]
    if meta:
        blocks.append(_context([" · ".join(meta)]))
    return blocks


def _block_chars(block: dict[str, Any]) -> int:
    if block["type"] == "section":
        return len(block["text"]["text"])
    return sum(len(e.get("text", "")) if isinstance(e.get("text"), str) else 0 for e in block.get("elements", []))


def _pack(blocks: list[dict[str, Any]], last_reserved: int) -> list[list[dict[str, Any]]]:
    """Group blocks into messages within the block and character limits, keeping `last_reserved`
    free block slots in the final message (for buttons)."""
    messages: list[list[dict[str, Any]]] = [[]]
    chars = 0
    for block in blocks:
        size = _block_chars(block)
        if messages[-1] and (len(messages[-1]) >= MAX_BLOCKS or chars + size > MAX_MESSAGE_CHARS):
            messages.append([])
            chars = 0
        messages[-1].append(block)
        chars += size
    if len(messages[-1]) + last_reserved > MAX_BLOCKS:
        messages.append(messages[-1][MAX_BLOCKS - last_reserved :])
        del messages[-2][MAX_BLOCKS - last_reserved :]
    return messages


def render(reply: Reply, buttons: Sequence[Button] = (), footer: str | None = None) -> list[SlackMessage]:
    """All the messages one reply needs, in order; `footer` (a plain-text note) and `buttons` go at
    the end of the last one."""
    blocks: list[dict[str, Any]] = []
    if reply.title:
        blocks.append(_section(f"*{_title(reply.title)}*"))
    warning = "" if reply.ok else ":warning: "
    if not reply.ok and not reply.text.strip():
        blocks.append(_section(warning))
    for part in layout(reply):
        if part.kind == "body":
            blocks += [_section(t) for t in split_text(warning + mrkdwn(part.text))]
        elif part.kind == "sources":
            blocks += _source_blocks(part.sources)
        else:
            blocks += _item_blocks(part.item)
    if not blocks:
        blocks.append(_section("_(no content)_"))
    if footer:
        blocks.append(_context([escape(one_line(footer, 300))]))

    packed = _pack(blocks, 1 if buttons else 0)
    if buttons:
        packed[-1].append({
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": b.text}, "action_id": b.action_id,
                 "value": b.value}
                for b in buttons
            ],
        })
    first_line = one_line(reply.title or reply.text or "digestbot", FALLBACK_LIMIT)
    fallback = escape(first_line)
    return [
        SlackMessage(fallback if i == 0 else f"{fallback} ({i + 1}/{len(packed)})", msg_blocks)
        for i, msg_blocks in enumerate(packed)
    ]


_INCOMING = re.compile(r"<([^<>]*)>")


def plain_text(slack_text: str, drop_user: str | None = None) -> str:
    """Slack-formatted incoming text as plain text: `<@U1>` -> `@U1`, `<#C1|general>` -> `#general`,
    `<!here>` -> `@here`, `<url|label>` -> label, entities decoded; mentions of `drop_user` removed."""

    def replace(match: re.Match[str]) -> str:
        inner, _, label = match.group(1).partition("|")
        if inner.startswith("@"):
            return "" if inner[1:] == drop_user else "@" + (label or inner[1:])
        if inner.startswith("#"):
            return "#" + (label or inner[1:])
        if inner.startswith("!"):
            return "@" + (label or inner[1:].split("^")[0])
        return label or inner

    text = _INCOMING.sub(replace, slack_text)
    return " ".join(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").split())
