"""The one object adapters hold: store + models + clock + posters, and `handle(request)`."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol

import numpy as np

from bot.config import Settings
from bot.core.answer import Answer, answer_question
from bot.core import fetch
from bot.core.feeds import feed_status
from bot.core.ingest import content_hash
from bot.core.models import Actor, Document, Hit, Reply, Request, Source, Target, UserError
from bot.core.registry import Registry, command_prefix, load_commands
from bot.core.retrieve import Retriever, clean_query, parse_since
from bot.core.store import Store, StoreError
from summarizer import Models, Summary, use_threads
from summarizer.encoder import Encoder
from summarizer.generative import GenerationError
from summarizer.grounded import grounded_answer

log = logging.getLogger(__name__)
ASK_PASSAGES = 6
BACKGROUND_BATCH = 8  # passages per background encoder call: small, so lookups never wait long
YIELD_S = 2.0  # how long the background embedder lets running lookups finish before its next batch
ASSUMED_RATE = 5.0  # passages/s the background embedder is assumed to reach before it has measured itself
QUERY_BATCH = 32  # waiting searches whose queries are encoded together
BACKGROUND_NICE = 10  # the background embedder's CPU priority (0 normal, 19 lowest)
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


def embed_in_batches(store: Store, encoder: Encoder, model_id: str, missing: list[tuple[str, str]],
                     batch: int) -> Iterator[int]:
    """Embed `missing` (hash, text) pairs, `batch` at a time, saving each batch; yields how many
    were embedded after each one (the caller may pause or stop in between)."""
    for start in range(0, len(missing), batch):
        chunk = missing[start:start + batch]
        vectors = encoder.embed_passages([text for _, text in chunk])
        store.save_embeddings(model_id, [(digest, vec) for (digest, _), vec in zip(chunk, vectors)])
        yield len(chunk)


def about(seconds: float) -> str:
    """A rough duration for people: "10 s", "3 min", "2 h"."""
    if seconds < 60:
        return f"{max(5, round(seconds / 5) * 5)} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


def _lower_priority() -> None:
    """Run the calling thread at a lower CPU priority (Linux keeps one per thread), so that when the
    cores are contended, lookups get them first; nothing happens where that is not possible."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (AttributeError, OSError) as exc:
        log.debug("background embedding runs at normal priority: %s", exc)


class QueryVectors:
    """Query embeddings for the lookup thread, computed for every waiting search at once.

    Searches that arrive together (many people at once) queue for the one lookup thread. Encoding
    their queries in one batch costs little more than encoding one, so the first search encodes
    the queries of all that wait behind it, and they find their vector ready.
    """

    def __init__(self, encoder: Callable[[], Encoder], keep: int = 256):
        self._encoder = encoder
        self._keep = keep
        self._lock = threading.Lock()
        self._waiting: dict[str, int] = {}  # cleaned query -> searches waiting for it
        self._ready: dict[str, np.ndarray] = {}  # oldest first

    def expect(self, query: str) -> str | None:
        """Note a search about to queue (on the event loop); returns the key to `done` it with."""
        try:
            key = clean_query(query)  # what the Retriever will ask to encode
        except UserError:
            return None
        with self._lock:
            self._waiting[key] = self._waiting.get(key, 0) + 1
        return key

    def done(self, key: str | None) -> None:
        if key is None:
            return
        with self._lock:
            if self._waiting.get(key, 0) > 1:
                self._waiting[key] -= 1
            else:
                self._waiting.pop(key, None)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """The Retriever's encoder call (on the lookup thread)."""
        todo = [text for text in texts if text not in self._ready]
        if todo:
            with self._lock:
                others = [q for q in self._waiting if q not in self._ready and q not in todo]
            batch = list(dict.fromkeys(todo + others))[:max(QUERY_BATCH, len(todo))]
            self._ready.update(zip(batch, self._encoder().embed_queries(batch)))
            for old in list(self._ready)[:max(0, len(self._ready) - self._keep)]:
                if old not in texts:
                    del self._ready[old]
        return np.stack([self._ready[text] for text in texts])


class BackgroundEmbedder:
    """Fills in the vectors of newly indexed passages on a thread of its own, a small batch at a time.

    Indexing makes a document searchable by keywords at once; its passages become searchable by
    meaning as this catches up. Before each batch it lets running lookups finish (up to YIELD_S);
    it uses its own encoder instance, its own share of the threads and a lower CPU priority, so a
    search never queues behind a large upload. It reads and writes through a connection of its own.
    """

    def __init__(self, store: Store, models: Models, lookups_idle: Callable[[float], bool]):
        self._main_store = store
        self._models = models
        self._lookups_idle = lookups_idle
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._state = threading.Condition()
        self._active = False
        self._thread: threading.Thread | None = None
        self.rate: float | None = None  # passages/s, measured
        self.backlog = 0  # passages waiting: counted when a round starts, kept up to date in between

    @property
    def active(self) -> bool:
        """Whether work is waiting or under way."""
        return not self._stop.is_set() and (self._active or self._wake.is_set())

    @property
    def started(self) -> bool:
        return self._thread is not None

    def wake(self, passages: int = 0) -> None:
        """Look for passages without vectors (soon; this never blocks); `passages` were just indexed."""
        with self._state:
            if self._stop.is_set():
                return
            self.backlog += passages
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="digestbot-embed", daemon=True)
                self._thread.start()
            self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing waits to be embedded (False on timeout)."""
        with self._state:
            return self._state.wait_for(lambda: not self.active, timeout)

    def seconds_for(self, passages: int) -> float:
        return passages / (self.rate or ASSUMED_RATE)

    def close(self) -> None:
        """Stop after the batch under way (what was embedded is saved; the rest waits for the next start)."""
        with self._state:
            self._stop.set()
            self._wake.set()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        _lower_priority()
        try:
            store = self._main_store.reopen()
        except StoreError as exc:
            log.warning("background embedding shares the service's database connection: %s", exc)
            store = self._main_store
        try:
            while True:
                self._wake.wait()
                with self._state:
                    if self._stop.is_set():
                        return
                    self._active = True
                    self._wake.clear()
                try:
                    self._catch_up(store)
                except Exception:  # a full disk or an encoder failure: tried again with the next document
                    log.exception("background embedding stopped; it resumes when a document is added")
                finally:
                    with self._state:
                        self._active = False
                        self._state.notify_all()
        finally:
            if store is not self._main_store:
                store.close()
            with self._state:
                self._state.notify_all()

    def _catch_up(self, store: Store) -> None:
        """Embed until no passage is left without a vector (documents added meanwhile included)."""
        model_id = self._models.encoder_id
        while not self._stop.is_set():
            missing = store.missing_embeddings(model_id)
            with self._state:
                self.backlog = len(missing)
            if not missing:
                return
            batches = embed_in_batches(store, self._models.bulk_encoder, model_id, missing, BACKGROUND_BATCH)
            while not self._stop.is_set():
                self._lookups_idle(YIELD_S)
                use_threads(self._models.bulk_threads)
                started = time.perf_counter()
                count = next(batches, 0)
                if not count:
                    break
                with self._state:
                    self.backlog = max(0, self.backlog - count)
                rate = count / max(time.perf_counter() - started, 1e-3)
                self.rate = rate if self.rate is None else 0.7 * self.rate + 0.3 * rate


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
        by meaning, so a passage in another language than the question still gets its chance."""
        return self.retriever.search(question, limit=ASK_PASSAGES, each_language=1)

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
