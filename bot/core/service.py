"""The one object adapters hold: store + models + clock + posters, and `handle(request)`."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol

import numpy as np

from bot.config import Settings
from bot.core.answer import Answer, answer_question
from bot.core.embedding import BackgroundEmbedder, QueryVectors, embed_in_batches
from bot.core import fetch
from bot.core.feeds import feed_status
from bot.core.ingest import content_hash
from bot.core.values import Actor, Document, Hit, Reply, Request, Source, Target, UserError
from bot.core.registry import Registry, command_prefix, load_commands
from bot.core.retrieve import Retriever, parse_since
from bot.core.store import Store, StoreError
from summarizer import Models, Summary, use_threads
from summarizer.generative import GenerationError
from summarizer.grounded import grounded_answer

log = logging.getLogger(__name__)
ASK_PASSAGES = 6
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Poster(Protocol):
    async def post(self, target: Target, reply: Reply) -> str: ...


def _without_lone_surrogates(request: Request) -> Request:
    """Platform JSON may decode to lone surrogates, which SQLite and the encoder cannot take."""
    scrub = lambda text: _LONE_SURROGATE.sub("\ufffd", text) if isinstance(text, str) else text  # noqa: E731
    return Request(
        request.command,
        {k: scrub(v) for k, v in request.args.items()},
        dataclasses.replace(request.actor, id=scrub(request.actor.id), name=scrub(request.actor.name)),
        dataclasses.replace(request.target, workspace=scrub(request.target.workspace),
                            channel=scrub(request.target.channel), thread=scrub(request.target.thread)),
    )


def system_clock() -> dt.datetime:
    """The default clock: the system's time, in UTC (tests inject their own)."""
    return dt.datetime.now(dt.timezone.utc)


def about(seconds: float) -> str:
    """A rough duration for people: "10 s", "3 min", "2 h"."""
    if seconds < 60:
        return f"{max(5, round(seconds / 5) * 5)} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


class Service:
    def __init__(self, settings: Settings, store: Store, models: Models,
                 clock: Callable[[], dt.datetime] = system_clock, commands: Registry | None = None):
        self.settings = settings
        self.commands = commands if commands is not None else load_commands()
        self.store = store
        self.models = models
        self.clock = clock
        self.posters: dict[str, Poster] = {}
        # The event loop never waits on slow work. Three threads, so nothing waits behind another
        # kind of work: lookups (queries, answers, summaries); document work (extracting, indexing);
        # and the background embedder filling in vectors of what was indexed.
        self._lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digestbot-lookup")
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digestbot-documents")
        self._lookups_running = 0
        self._lookups_state = threading.Condition()
        self.embedder = BackgroundEmbedder(store, models, self._wait_for_lookups)
        self.query_vectors = QueryVectors(lambda: models.encoder)
        self.retriever = Retriever(store, lambda: self.query_vectors, models.encoder_id)

    def close(self) -> None:
        self.embedder.close()
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._lookups.shutdown(wait=True, cancel_futures=True)
        self.models.close()
        self.store.close()

    async def in_worker(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Document work (extracting, parsing, indexing) on its own thread, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, partial(fn, *args, **kwargs))

    async def in_lookup(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Interactive model work (a search, an answer, a summary) on the lookup thread: never queued
        behind document work or background embedding, and first to the cores."""
        return await asyncio.get_running_loop().run_in_executor(self._lookups, partial(self._lookup, fn, args, kwargs))

    def _lookup(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        with self._lookups_state:
            self._lookups_running += 1
        try:
            # the whole thread budget, unless background embedding has its share of it now
            use_threads(self.models.interactive_threads if self.embedder.active else self.models.threads)
            return fn(*args, **kwargs)
        finally:
            with self._lookups_state:
                self._lookups_running -= 1
                self._lookups_state.notify_all()

    def _wait_for_lookups(self, timeout: float) -> bool:
        with self._lookups_state:
            return self._lookups_state.wait_for(lambda: self._lookups_running == 0, timeout)

    # -- the entry point for every adapter -------------------------------------------------------
    async def handle(self, request: Request) -> Reply:
        """Run a command; bad input and failures become a short Reply(ok=False), never an exception."""
        request = _without_lone_surrogates(request)
        try:
            cmd = self.commands.validate(request)
            return await cmd.handler(self, request)
        except UserError as exc:
            return Reply(str(exc), ok=False, title="Sorry")
        except StoreError as exc:
            log.error("store error in /%s: %s", request.command, exc)
            return Reply(f"The database cannot be written: {exc}", ok=False, title="Error")
        except Exception:
            log.exception("command /%s failed", request.command)
            return Reply("Something went wrong on our side; the error was logged.", ok=False, title="Error")

    async def mention(self, text: str, actor: Actor, target: Target) -> Reply:
        """What a message addressed to the bot (an @mention, its text without the mention) gets on
        every platform: a question is answered like `ask`; nothing but the mention gets a short help."""
        question = text.strip()
        if not question:
            prefix = command_prefix(target.platform)
            return Reply(f"Mention me with a question, e.g. _@digestbot what changed this week?_ "
                         f"`{prefix}help` lists the commands.", title="digestbot")
        return await self.handle(Request("ask", {"question": question}, actor, target))

    upload_limit = fetch.MAX_BYTES  # bytes: adapters stop downloading a file past this

    def check_upload(self, actor: Actor, name: str, size: int | None = None) -> None:
        """Raise UserError (one line) when `actor` may not add documents or `size` is over the limit:
        adapters ask before downloading a file, with the size the platform reports."""
        fetch.check_upload(self, actor, name, size)

    async def upload(self, actor: Actor, data: bytes, *, name: str, content_type: str, url: str) -> Reply:
        """Index a file sent with a command that `accepts_file`, or with a mention; `url` is its link.
        The policy and limits are checked again here; bad input is a Reply(ok=False), like `handle`."""
        return await fetch.add_bytes(self, actor, data, name=name, content_type=content_type, url=url)

    def timestamp(self) -> str:
        """The service clock's time as the store keeps times (ISO 8601 to the second, UTC)."""
        return self.clock().isoformat(timespec="seconds")

    def register_poster(self, platform: str, poster: Poster) -> None:
        self.posters[platform] = poster

    # -- documents -------------------------------------------------------------------------------
    def resolve_documents(self, needle: str | None) -> list[Document] | None:
        """None when no filter was given; else the matching documents (UserError if none)."""
        if not needle or not needle.strip():
            return None
        found = self.store.find_documents(needle.strip())
        if not found:
            raise UserError(f"No indexed document matches {needle.strip()[:100]!r}. Try /sources.")
        return found

    def resolve_document(self, needle: str) -> Document:
        found = self.resolve_documents(needle) or []
        exact = [d for d in found if needle.strip() in (d.id, d.path)]
        if exact or len(found) == 1:
            return (exact or found)[0]
        names = "; ".join(f"{d.title} ({d.id})" for d in found[:5])
        raise UserError(f"{len(found)} documents match {needle.strip()[:100]!r}: {names}. Be more specific.")

    async def document_choices(self, prefix: str, limit: int = 25) -> list[tuple[str, str]]:
        docs = self.store.find_documents(prefix.strip()) if prefix.strip() else self.store.documents()
        return [(d.id, d.title) for d in docs[:limit]]

    def passage_quote(self, passage_id: int) -> Source | None:
        passage = self.store.passages_by_id([passage_id]).get(passage_id)
        doc = passage and self.store.document(passage.doc_id)
        if not doc:
            return None
        return Source(1, doc.id, doc.title, doc.path, doc.url, passage.text, passage.id)

    # -- model-backed operations (lookups on their own thread) ------------------------------------
    async def search(self, query: str, *, documents: list[Document] | None = None, since: str | None = None,
                     limit: int = 5) -> list[Hit]:
        since = parse_since(since)
        key = self.query_vectors.expect(query)
        try:
            return await self.in_lookup(self.retriever.search, query, limit=limit, documents=documents, since=since)
        finally:
            self.query_vectors.done(key)

    async def ask(self, question: str) -> Answer:
        key = self.query_vectors.expect(question)
        try:
            return await self.in_lookup(self.answer, question)
        finally:
            self.query_vectors.done(key)

    def answer(self, question: str) -> Answer:
        """Retrieve, then answer (synchronous: the lookup thread, the CLI batch mode and the evals call it).

        The extractive answer comes first: it is the evidence check (abstaining when nothing is close
        enough) and the fallback. With a generator configured, a grounded generated answer over the
        same passages replaces it when at least one generated claim is supported by its passage.
        """
        hits = self.question_hits(question)
        extractive = answer_question(question, hits, self.models.encoder, self.embed_sentences,
                                     self.retriever.query_vector(question))
        if extractive.abstained or not self.models.generates:
            return extractive
        try:
            return grounded_answer(question, hits, self.models.generator, self.models.encoder, extractive,
                                   self.embed_sentences)
        except GenerationError as exc:
            log.warning("generated answer failed, answering extractively: %s", exc)
            return extractive

    def question_hits(self, question: str) -> list[Hit]:
        """The passages an answer is chosen from: the best by fused rank, and each language's best
        by meaning, so a passage in another language than the question still gets its chance. Each
        carries the passage before it: a passage may begin inside a section whose heading it lacks."""
        hits = self.retriever.search(question, limit=ASK_PASSAGES, each_language=1)
        before = self.store.passages_before(hit.passage for hit in hits)
        return [dataclasses.replace(hit, before=before.get(hit.passage.id)) for hit in hits]

    def embed_sentences(self, texts: list[str]) -> np.ndarray:
        """Sentence vectors, cached in SQLite like passage vectors, so warm questions skip the encoder."""
        model_id = f"{self.models.encoder_id}#sentence"
        hashes = [content_hash(text) for text in texts]
        cached = self.store.embeddings(model_id, hashes)
        todo = sorted({h: t for h, t in zip(hashes, texts) if h not in cached}.items())
        if todo:
            vectors = self.models.encoder.embed_passages([text for _, text in todo])
            fresh = list(zip((h for h, _ in todo), vectors))
            self._cache(self.store.save_embeddings, model_id, fresh)
            cached.update((h, np.asarray(v, dtype=np.float16)) for h, v in fresh)
        return np.stack([cached[h] for h in hashes]).astype(np.float32)

    async def summarize(self, doc: Document) -> Summary:
        """Cached by content hash + model id + wanted language; computed on the lookup thread otherwise."""
        model_id = self.models.summarizer_id
        cached = self.store.cached_summary(doc.content_hash, model_id, self.settings.language)
        if cached:
            return Summary.from_json(cached[0], cached[1], model_id)
        passages = [p.text for p in self.store.passages(doc.id)]
        summary = await self.in_lookup(self.models.summarize, passages, doc.language, self.settings.language,
                                       doc.title)
        self._cache(self.store.save_summary, doc.content_hash, model_id, self.settings.language,
                    summary.to_json(), summary.language)
        return summary

    @staticmethod
    def _cache(save: Callable[..., None], *args: Any) -> None:
        """Caches are an optimisation: a read-only or full database still answers lookups."""
        try:
            save(*args)
        except StoreError as exc:
            log.warning("cache not saved: %s", exc)

    def embed_missing(self, progress: Callable[[int], None] = lambda n: None, batch: int = 32) -> int:
        """Embed passages with no cached vector, now (synchronous: CLI indexing, which shows progress)."""
        missing = self.store.missing_embeddings(self.models.encoder_id)
        for count in embed_in_batches(self.store, self.models.encoder, self.models.encoder_id, missing, batch):
            progress(count)
        return len(missing)

    def embed_in_background(self, passages: int = 0) -> None:
        """Have the background embedder fill in the vectors of what was just indexed (`passages`
        new ones, when known, so the backlog counts them at once); never blocks."""
        self.embedder.wake(passages)

    def embedding_backlog(self) -> int:
        """Passages (distinct texts) still waiting for their vectors: the embedder's count once it
        has run (counting is a scan of every passage), else the database's."""
        if self.embedder.started:
            return self.embedder.backlog
        return self.store.missing_embedding_count(self.models.encoder_id)

    def meaning_search_note(self) -> str:
        """For the reply to an add: when what was just indexed becomes searchable by meaning too."""
        waiting = self.embedding_backlog()
        if not waiting:
            return "searchable now"
        return f"searchable by keywords now, by meaning in about {about(self.embedder.seconds_for(waiting))}"

    # -- chat state ------------------------------------------------------------------------------
    def first_delivery(self, key: str) -> bool:
        return self.store.chat.first_delivery(key)

    def status(self) -> dict[str, Any]:
        waiting = self.embedding_backlog()
        status = {
            "documents": len(self.store.documents()),
            "passages": self.store.passage_count(),
            "passages waiting for embeddings": waiting,
            "retrieval model": self.models.encoder_id,
            "summarizer": self.models.summarizer_id,
            "database": self.settings.db_path,
        }
        if waiting:
            status["searchable by meaning in about"] = about(self.embedder.seconds_for(waiting))
        status.update(feed_status(self.store))
        return status


def open_service(settings: Settings, clock: Callable[[], dt.datetime] = system_clock) -> Service:
    return Service(settings, Store.open(settings.db_path), Models.from_settings(settings), clock)
