"""Reply -> terminal text: the console's renderer (plain text, or a rich panel on a terminal)."""
from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.text import Text

from bot.adapters.render_common import layout
from bot.core.values import Reply


def source_lines(reply: Reply) -> list[str]:
    """The sources (with their quotes) and digest items below the body, as plain lines."""
    lines = []
    for part in layout(reply):
        if part.kind == "sources":
            lines.append("Sources:")
            for source in part.sources:
                lines.append(f"[{source.n}] {source.title} <{source.link}>")
                lines.extend(f"    > {line}" for line in source.quote.splitlines() if line.strip())
        elif part.kind == "item":
            if part.n == 1:
                lines.append("Items:")
            lines.append(f"- {part.item.title} <{part.item.link}>")
            if part.item.summary:
                lines.append(f"    {part.item.summary}")
    return lines


def to_text(reply: Reply) -> str:
    """Plain text for pipes and scripts: title, body, then numbered sources with their quotes."""
    parts = [f"== {reply.title} ==" if reply.title else "", reply.text]
    extra = source_lines(reply)
    if extra:
        parts += ["", *extra]
    return "\n".join(part for part in parts if part is not None).strip("\n")


def to_rich(reply: Reply) -> Panel:
    """A bordered panel for an interactive terminal; text is shown literally (no markup injection)."""
    body = [Text(reply.text)]
    extra = source_lines(reply)
    if extra:
        body.append(Text("\n" + "\n".join(extra), style="dim"))
    return Panel(Group(*body), title=Text(reply.title or ""), border_style="green" if reply.ok else "red")
