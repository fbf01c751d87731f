"""The command registry: every chat/console/CLI command is defined here once.

A command's help text is its slash-command description on every platform; its params carry their
own descriptions. Handlers take the Service and a Request and return a Reply.
"""
from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.models import Reply, Request, Source, UserError

if TYPE_CHECKING:
    from bot.core.service import Service

Handler = Callable[["Service", Request], Awaitable[Reply]]


@dataclass(frozen=True)
class Param:
    name: str
    help: str
    required: bool = True
    autocomplete: str | None = None  # "documents": offer indexed document titles
    greedy: bool = False  # typed as free text: takes all remaining words of a command line


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Handler
    params: tuple[Param, ...] = ()
    admin: bool = False
    slow: bool = False  # may touch the model: adapters acknowledge first, answer later
    admin_aware: bool = False  # open to all, but an admin's call does more: adapters must say who is an admin

    @property
    def group(self) -> str | None:
        return self.name.split(" ", 1)[0] if " " in self.name else None

    @property
    def leaf(self) -> str:
        return self.name.rsplit(" ", 1)[-1]

    def usage(self, platform: str = "console") -> str:
        args = " ".join(p.name.upper() if p.required else f"[{p.name.upper()}]" for p in self.params)
        return f"{command_prefix(platform)}{self.name}" + (f" {args}" if args else "")


def command_prefix(platform: str) -> str:
    """How a person types a command there: Slack has one `/digestbot` command with subcommands."""
    return "/digestbot " if platform == "slack" else "/"


COMMANDS: dict[str, Command] = {}
# Descriptions of command groups, for platforms that register a group as one command (Discord).
GROUPS = {
    "digest": "Scheduled digests of what is new for this channel",
    "feed": "RSS and Atom feeds the bot follows",
}


def command(name: str, *params: Param, admin: bool = False, slow: bool = False,
            admin_aware: bool = False) -> Callable[[Handler], Handler]:
    """Register a handler; its docstring's first line is the command's help text."""

    def register(handler: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"command {name!r} defined twice")
        help_text = (handler.__doc__ or name).strip().splitlines()[0]
        COMMANDS[name] = Command(name, help_text, handler, params, admin, slow, admin_aware)
        return handler

    return register


def validate(request: Request) -> Command:
    """The command a request names, with required args present and unknown args refused."""
    platform = request.target.platform
    prefix = command_prefix(platform)
    cmd = COMMANDS.get(request.command)
    if cmd is None:
        raise UserError(f"Unknown command {prefix}{request.command}. Try {prefix}help.")
    known = {p.name for p in cmd.params}
    unknown = sorted(set(request.args) - known)
    if unknown:
        raise UserError(f"{prefix}{cmd.name} takes no {', '.join(unknown)}. Usage: {cmd.usage(platform)}")
    missing = [p.name for p in cmd.params if p.required and not (request.args.get(p.name) or "").strip()]
    if missing:
        raise UserError(f"{prefix}{cmd.name} needs {', '.join(missing)}. Usage: {cmd.usage(platform)}")
    if cmd.admin and not request.actor.is_admin:
        raise UserError(f"{prefix}{cmd.name} is for admins only; nothing was changed.")
    return cmd


# -- lookups ---------------------------------------------------------------------------------------
QUERY = Param("query", "Words or a question to look for", greedy=True)
DOCUMENT = Param("document", "Document id, file path or part of its title", autocomplete="documents", greedy=True)


@command("help")
async def help_command(service: "Service", request: Request) -> Reply:
    """List the commands and what they do."""
    platform = request.target.platform
    lines = [f"`{cmd.usage(platform)}` {cmd.help}" + (" _(admins)_" if cmd.admin else "") for cmd in COMMANDS.values()]
    lines.append("Mention the bot with a question to get a cited answer.")
    return Reply("\n".join(lines), title="digestbot commands")


@command("search", QUERY, Param("document", DOCUMENT.help, required=False, autocomplete="documents"),
         Param("since", "Only documents dated on or after this day (YYYY-MM-DD)", required=False), slow=True)
async def search_command(service: "Service", request: Request) -> Reply:
    """Find passages in the indexed documents (keyword + meaning)."""
    query = request.args["query"]
    documents = service.resolve_documents(request.args.get("document"))
    hits = await service.search(query, documents=documents, since=request.args.get("since"), limit=5)
    if not hits:
        return Reply(f"No passages match _{query.strip()[:200]}_.", title="Search",
                     data={"query": query, "results": []})
    snippets = [snippet(h.passage.text) for h in hits]
    sources = [Source(i, h.document.id, h.document.title, h.document.path, h.document.url, "", h.passage.id)
               for i, h in enumerate(hits, 1)]
    lines = [f"[{s.n}] **{s.title}**: {text}" for s, text in zip(sources, snippets)]
    results = [{"doc_id": h.document.id, "title": h.document.title, "path": h.document.path,
                "url": h.document.url, "snippet": text, "score": round(h.score, 6),
                "passage_id": h.passage.id, "start": h.passage.start, "end": h.passage.end}
               for h, text in zip(hits, snippets)]
    return Reply("\n".join(lines), sources, title=f"Search: {query.strip()[:80]}",
                 data={"query": query, "results": results})


@command("sources")
async def sources_command(service: "Service", request: Request) -> Reply:
    """List the indexed documents."""
    docs = service.store.documents()
    if not docs:
        return Reply("Nothing is indexed yet.", title="Sources", data={"documents": []})
    sources = [Source(i, d.id, d.title, d.path, d.url, "") for i, d in enumerate(docs, 1)]
    lines = [f"[{s.n}] **{d.title}** ({d.language}, {d.published or 'undated'}, {d.chars:,} chars) `{d.id}`"
             for s, d in zip(sources, docs)]
    data = {"documents": [{"doc_id": d.id, "title": d.title, "path": d.path, "url": d.url,
                           "published": d.published, "language": d.language, "chars": d.chars,
                           "added_at": d.added_at} for d in docs]}
    return Reply("\n".join(lines), sources, title=f"Sources ({len(docs)})", data=data)


@command("status")
async def status_command(service: "Service", request: Request) -> Reply:
    """Show what is indexed and which models answer."""
    status = service.status()
    lines = [f"**{key}:** {value}" for key, value in status.items()]
    return Reply("\n".join(lines), title="Status", data=status)


@command("summary", DOCUMENT, slow=True)
async def summary_command(service: "Service", request: Request) -> Reply:
    """Summarize a whole document: one overview sentence and its key points."""
    doc = service.resolve_document(request.args["document"])
    summary = await service.summarize(doc)
    note = ""
    if summary.language.lower() != service.settings.language.lower():
        note = f"\n_Summary in {summary.language}, the document's language: the summarizer does not translate._"
    source = Source(1, doc.id, doc.title, doc.path, doc.url, "")
    return Reply(f"{summary.text} [1]{note}", [source], title=f"Summary: {doc.title}",
                 data={"doc_id": doc.id, "title": doc.title, "summary": summary.text, "overview": summary.overview,
                       "key_points": [{"text": p.text, "source": p.source} for p in summary.points],
                       "language": summary.language, "model": summary.model_id})


@command("ask", Param("question", "What you want to know", greedy=True), slow=True)
async def ask_command(service: "Service", request: Request) -> Reply:
    """Answer a question from the indexed documents, with cited sources."""
    answer = await service.ask(request.args["question"])
    data = {"question": request.args["question"], "answer": answer.text, "short": answer.short,
            "abstained": answer.abstained,
            "sources": [{"n": s.n, "doc_id": s.doc_id, "title": s.title, "path": s.path, "url": s.url, "quote": s.quote}
                        for s in answer.sources]}
    if answer.abstained:
        text = "I found nothing in the indexed documents that answers this."
        if answer.closest:
            text += "\nClosest documents: " + "; ".join(f"**{d.title}**" for d in answer.closest)
        data["closest"] = [d.id for d in answer.closest]
        return Reply(text, title="No answer found", data=data)
    return Reply(answer.text, answer.sources, title="Answer", data=data)


def snippet(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def parse_command_line(line: str) -> tuple[str, dict[str, str]]:
    """`/search who is ceo document:000` -> ("search", {"query": "who is ceo", "document": "000"}).

    The longest registered command name wins ("digest schedule" over "digest"); `name:value`
    tokens set a param by name; other tokens fill params in order, a greedy param taking the rest.
    """
    text = line.strip().lstrip("/").strip()
    try:
        tokens = shlex.split(text)
    except ValueError:  # unbalanced quotes: take the words as typed
        tokens = text.split()
    for size in (2, 1):
        name = " ".join(tokens[:size]).lower()
        if len(tokens) >= size and name in COMMANDS:
            cmd, rest = COMMANDS[name], tokens[size:]
            break
    else:
        raise UserError(f"Unknown command /{' '.join(tokens[:2])[:60]}. Try /help.")
    names = {p.name for p in cmd.params}
    args: dict[str, str] = {}
    positional = []
    for token in rest:
        key, sep, value = token.partition(":")
        if sep and key in names and value:
            args[key] = value
        else:
            positional.append(token)
    for param in cmd.params:
        if not positional:
            break
        if param.name in args:
            continue
        if param.greedy:
            args[param.name], positional = " ".join(positional), []
        else:
            args[param.name] = positional.pop(0)
    if positional:
        raise UserError(f"Too many arguments. Usage: {cmd.usage()}")
    return cmd.name, args


# Commands defined in their own modules register on import.
from bot.core import digest, feeds  # noqa: E402,F401
