"""Reply -> terminal text: the console's renderer (plain text, or a rich panel on a terminal)."""
from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.text import Text

from bot.core.models import Reply


def source_lines(reply: Reply) -> list[str]:
    lines = []
    for source in reply.sources:
        lines.append(f"[{source.n}] {source.title} <{source.link}>")
        if source.quote:
            lines.extend(f"    > {line}" for line in source.quote.splitlines() if line.strip())
    for item in reply.items:
        lines.append(f"- {item.title} <{item.link}>")
        if item.summary:
            lines.append(f"    {item.summary}")
    return lines


def to_text(reply: Reply) -> str:
    """Plain text for pipes and scripts: title, body, then numbered sources with their quotes."""
    parts = [f"== {reply.title} ==" if reply.title else "", reply.text]
    extra = source_lines(reply)
    if extra:
        parts += ["", "Sources:" if reply.sources else "Items:", *extra]
    return "\n".join(part for part in parts if part is not None).strip("\n")


def to_rich(reply: Reply) -> Panel:
    """A bordered panel for an interactive terminal; text is shown literally (no markup injection)."""
    body = [Text(reply.text)]
    extra = source_lines(reply)
    if extra:
        body.append(Text("\n" + "\n".join(extra), style="dim"))
    return Panel(Group(*body), title=Text(reply.title or ""), border_style="green" if reply.ok else "red")
