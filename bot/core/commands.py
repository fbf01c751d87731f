"""The lookup commands: help, search, sources, status, summary and ask.

A command's help text is its slash-command description on every platform; its params carry their
own descriptions. Handlers take the Service and a Request and return a Reply.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.values import Reply, Request, Source
from bot.core.registry import Param, command

if TYPE_CHECKING:
    from bot.core.service import Service


# -- lookups ---------------------------------------------------------------------------------------
QUERY = Param("query", "Words or a question to look for", greedy=True)
DOCUMENT = Param("document", "Document id, file path or part of its title", autocomplete="documents", greedy=True)


@command("help")
async def help_command(service: "Service", request: Request) -> Reply:
    """List the commands and what they do."""
    platform = request.target.platform
    lines = [f"`{cmd.usage(platform)}` {cmd.help}" + (" _(admins)_" if cmd.admin else "") for cmd in service.commands.values()]
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
