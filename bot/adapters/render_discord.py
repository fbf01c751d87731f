"""Reply -> Discord messages. All Discord escaping, link syntax and splitting live here.

The core's markdown (**bold**, _italic_, `code`, `[n]` markers) is kept; everything else in
relayed text is made literal: markdown punctuation is backslash-escaped, `<` is escaped so no
`<@id>`, `<@&id>`, `<#id>` or `<t:…>` can form, `@everyone`/`@here` get a zero-width space and
`](` cannot start a masked link (not even inside a URL). Web URLs in relayed text stay clickable as
`<url>` (no preview). Sources become numbered `[title](<url>)` links, unless the title names another
host than the URL's (render_common.disguised): then the title is text and the URL is shown as `<url>`. (The client additionally sends
`allowed_mentions` with nothing allowed, so even a rendering slip could not ping anyone.)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import discord

from bot.adapters.render_common import disguised, layout, one_line, web_url
from bot.core.values import DigestItem, Reply, Source

CONTENT_LIMIT = 2000  # plain message content
DESCRIPTION_LIMIT = 4096  # one embed's description
EMBED_TOTAL_LIMIT = 6000  # all text of all embeds in one message
TITLE_LIMIT = 256  # embed title
CHOICE_LIMIT = 100  # autocomplete choice name / value
LINK_TITLE_LIMIT = 200  # a source title inside [title](<url>)
OK_COLOUR = discord.Colour.blurple()

# A web URL in relayed text; it ends before `](`, which would make the URL the label of a masked link.
_URL = re.compile(r"https?://(?:(?!\]\()[^\s<>\"'`])+[^\s<>\"'`.,;:!?)\]]", re.IGNORECASE)
_INLINE = re.compile(r"[\\*_~`|<]")  # emphasis, code, spoiler, escape; `<` opens mentions/timestamps
_LINE_START = re.compile(r"^([ \t]*)(?:([>#+-])|(\d+)\.)", re.MULTILINE)  # quotes, headings, lists
_MASS_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)
_CORE_MARKUP = re.compile(
    r"\*\*(?P<bold>\S(?:.*?\S)?)\*\*"
    r"|(?<![\w\\])_(?P<italic>\S(?:.*?\S)?)_(?!\w)"
    r"|`(?P<code>[^`\n]+)`"
)
_LINK = re.compile(r"\[(?:\\.|[^\]\\])*\]\(<[^>]*>\)")  # a link this module built
# A posted digest names its run key in its first footer, so that after a crash the poster can find it
# in the channel's history (DiscordPoster.find) instead of posting it again.
RUN_MARK = "digest "
_RUN_FOOTER = re.compile(rf"(?:^| · ){RUN_MARK}(?P<run>\S+)$")


@dataclass
class DiscordMessage:
    """One message: plain `content` (errors, short notes) and/or `embeds`."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)

    def kwargs(self) -> dict[str, Any]:
        """Arguments for `send`/`followup.send`; plain content never unfurls link previews."""
        return {"content": self.content, "embeds": self.embeds, "suppress_embeds": not self.embeds}


def _escape_plain(text: str) -> str:
    text = _INLINE.sub(lambda m: "\\" + m.group(), text)
    text = _LINE_START.sub(lambda m: m.group(1) + (f"\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\."), text)
    text = text.replace("](", "]\\(")
    return _MASS_MENTION.sub("@\u200b\\1", text)


def escape(text: str) -> str:
    """Relayed text as literal Discord text; web URLs become `<url>` links without previews."""
    out, pos = [], 0
    for match in _URL.finditer(text):
        out.append(_escape_plain(text[pos : match.start()]))
        out.append(f"<{match.group()}>")
        pos = match.end()
    out.append(_escape_plain(text[pos:]))
    return "".join(out)


def markdown(text: str) -> str:
    """The core's markdown as Discord markdown, with everything between the markup escaped."""
    out, pos = [], 0
    for match in _CORE_MARKUP.finditer(text):
        out.append(escape(text[pos : match.start()]))
        if match.group("bold") is not None:
            out.append(f"**{escape(match.group('bold'))}**")
        elif match.group("italic") is not None:
            out.append(f"_{escape(match.group('italic'))}_")
        else:  # inside inline code nothing renders: no markdown, no mentions, no links
            out.append(f"`{match.group('code')}`")
        pos = match.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def link(url: str | None, title: str, path: str | None = None) -> str:
    """`[title](<url>)` for web URLs (brackets suppress the preview), `title <url>` when the title
    names another host; else the title and its path."""
    label = escape(one_line(title, LINK_TITLE_LIMIT)).replace("[", "\\[").replace("]", "\\]")
    target = web_url(url)
    if target:
        return f"{label} <{target}>" if disguised(title, target) else f"[{label}](<{target}>)"
    if path:
        path = one_line(path, 300)
        return f"{label} `{path}`" if "`" not in path else f"{label} {escape(path)}"
    return label


def sources_block(sources: Sequence[Source]) -> str:
    lines = [f"[{s.n}] " + link(s.url, s.title, None if s.url else s.path) for s in sources]
    return "**Sources**\n" + "\n".join(lines)


def item_block(number: int, item: DigestItem) -> str:
    heading = f"**{number}. " + link(item.url, item.title) + "**"
    if item.published:
        heading += f" · {escape(item.published)}"
    if not item.url:
        heading += "\n" + link(None, "", item.path).strip()
    return heading + ("\n" + escape(item.summary.strip()) if item.summary.strip() else "")


# -- splitting --------------------------------------------------------------------------------------
def _break_points(text: str, end: int) -> list[tuple[int, int]]:
    """(position, rank) where text[:end] may be cut: 3 paragraph, 2 line, 1 space outside
    bold/italic, 0 any other position between characters.

    Escapes (`\\x`), our `<url>` and `[title](<url>)` links and code spans are never cut, and
    whitespace inside bold/italic is not a preferred break, so every piece renders on its own.
    """
    points: list[tuple[int, int]] = []
    bold = italic = code = False
    i = 0
    while i < end:
        ch = text[i]
        if i:
            if not code and ch in " \n" and not (bold or italic):
                points.append((i, 3 if text.startswith("\n\n", i) else 2 if ch == "\n" else 1))
            elif not code:
                points.append((i, 0))
        if code:
            code = ch != "`"
        elif ch == "\\":
            i += 1
        elif ch == "<" and (close := text.find(">", i)) != -1:
            i = close
        elif ch == "[" and (m := _LINK.match(text, i)):
            i = m.end() - 1
        elif text.startswith("**", i):
            bold, i = not bold, i + 1
        elif ch == "_":
            italic = not italic
        elif ch == "`":
            code = True
        i += 1
    return points


def _best_cut(points: list[tuple[int, int]], limit: int) -> int:
    late = [(p, r) for p, r in points if p >= limit // 3]
    for rank in (3, 2, 1, 0):
        cuts = [p for p, r in late if r >= rank]
        if cuts:
            return cuts[-1]
    return points[-1][0] if points else limit


def split(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at the best break in the later part of the window:
    a paragraph, else a line, else a space outside markup, else (unbroken runs) between characters."""
    pieces = []
    while len(text) > limit:
        cut = _best_cut(_break_points(text, limit + 1), limit)
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text.strip():
        pieces.append(text)
    return pieces


def clip(text: str, limit: int) -> str:
    """Escaped text shortened to `limit` with an ellipsis, never cutting an escape or markup."""
    return text if len(text) <= limit else split(text, limit - 1)[0] + "…"


def pack(blocks: Sequence[str], limit: int) -> list[str]:
    """Join blocks with blank lines into as few pieces of at most `limit` characters as cleanly
    possible; a block too long for one piece is split."""
    pieces = [""]
    for text in blocks:
        joined = f"{pieces[-1]}\n\n{text}" if pieces[-1] else text
        if len(joined) <= limit:
            pieces[-1] = joined
        else:
            parts = split(text, limit) or [""]
            if pieces[-1]:
                pieces.append("")
            pieces[-1] = parts[0]
            pieces.extend(parts[1:])
    return [p for p in pieces if p]


# -- whole replies ----------------------------------------------------------------------------------
def render(reply: Reply) -> list[DiscordMessage]:
    """All messages one reply needs, in order. Failures are short plain text; the rest are embeds,
    one per message (title on the first, `k/n` footers when split, a digest's run key in the first
    footer), each within Discord's limits."""
    if not reply.ok:
        return [DiscordMessage(content=piece) for piece in split("⚠️ " + markdown(reply.text), CONTENT_LIMIT)]
    blocks = [markdown(part.text) if part.kind == "body" else sources_block(part.sources) if part.kind == "sources"
              else item_block(part.n, part.item) for part in layout(reply)]
    title = clip(escape(one_line(reply.title, TITLE_LIMIT)), TITLE_LIMIT) if reply.title else None
    pieces = pack(blocks, DESCRIPTION_LIMIT) or [""]
    run = (reply.data or {}).get("run")
    messages = []
    for k, piece in enumerate(pieces, 1):
        embed = discord.Embed(title=title if k == 1 else None, description=piece or None, colour=OK_COLOUR)
        footer = [f"{k}/{len(pieces)}"] if len(pieces) > 1 else []
        if run and k == 1:
            footer.append(RUN_MARK + run)  # keys are short and have no spaces
        if footer:
            embed.set_footer(text=" · ".join(footer))
        messages.append(DiscordMessage(embeds=[embed]))
    return messages


def run_key_of(embeds: Sequence[discord.Embed]) -> str | None:
    """The digest run key `render` put in a message's first footer (None for any other message)."""
    footer = embeds[0].footer.text if embeds else None
    match = _RUN_FOOTER.search(footer or "")
    return match["run"] if match else None


def render_quote(source: Source) -> DiscordMessage:
    """The passage behind a citation, for the private "show source" reply."""
    text = clip(escape(source.quote.strip()), DESCRIPTION_LIMIT)
    title = clip(escape(one_line(source.title, TITLE_LIMIT)), TITLE_LIMIT)
    target = web_url(source.url)
    honest = target and not disguised(source.title, target)
    embed = discord.Embed(title=title, url=target if honest else None, description=text or None, colour=OK_COLOUR)
    if not honest:  # the title is no link: say plainly where the source is
        embed.set_footer(text=one_line(source.link, 2048))
    return DiscordMessage(embeds=[embed])


def choice_name(text: str) -> str:
    """An autocomplete choice label: one line of at most 100 characters (Discord shows it raw)."""
    return one_line(text, CHOICE_LIMIT) or "untitled"
