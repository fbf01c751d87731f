"""The one object adapters hold: store + models + clock + posters, and `handle(request)`."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol

import numpy as np

from bot.config import Settings
from bot.core import commands
from bot.core.answer import Answer, answer_question
from bot.core.ingest import content_hash
from bot.core.models import Document, Hit, Reply, Request, Source, Target, UserError
from bot.core.retrieve import Retriever, parse_since
from bot.core.store import Store, StoreError
from summarizer import Models, Summary
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


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Service:
    def __init__(self, settings: Settings, store: Store, models: Models,
                 clock: Callable[[], dt.datetime] = utc_now):
        self.settings = settings
        self.store = store
        self.models = models
        self.clock = clock
        self.posters: dict[str, Poster] = {}
        # One worker thread for all model work: the event loop never waits on a model.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digestbot-model")
        self.retriever = Retriever(store, lambda: models.encoder, models.encoder_id)

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
        self.models.close()
        self.store.close()

    async def in_worker(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._worker, partial(fn, *args, **kwargs))

    # -- the entry point for every adapter -------------------------------------------------------
    async def handle(self, request: Request) -> Reply:
        """Run a command; bad input and failures become a short Reply(ok=False), never an exception."""
        request = _without_lone_surrogates(request)
        try:
            cmd = commands.validate(request)
            return await cmd.handler(self, request)
        except UserError as exc:
            return Reply(str(exc), ok=False, title="Sorry")
        except StoreError as exc:
            log.error("store error in /%s: %s", request.command, exc)
            return Reply(f"The database cannot be written: {exc}", ok=False, title="Error")
        except Exception:
            log.exception("command /%s failed", request.command)
            return Reply("Something went wrong on our side; the error was logged.", ok=False, title="Error")

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

    # -- model-backed operations (all in the worker) ---------------------------------------------
    async def search(self, query: str, *, documents: list[Document] | None = None, since: str | None = None,
                     limit: int = 5) -> list[Hit]:
        since = parse_since(since)
        return await self.in_worker(self.retriever.search, query, limit=limit, documents=documents, since=since)

    async def ask(self, question: str) -> Answer:
        return await self.in_worker(self.answer, question)

    def answer(self, question: str) -> Answer:
        """Retrieve, then answer (synchronous: the worker, the CLI batch mode and the evals call it).

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
        """Cached by content hash + model id + wanted language; computed in the worker otherwise."""
        model_id = self.models.summarizer_id
        cached = self.store.cached_summary(doc.content_hash, model_id, self.settings.language)
        if cached:
            return Summary.from_json(cached[0], cached[1], model_id)
        passages = [p.text for p in self.store.passages(doc.id)]
        summary = await self.in_worker(self.models.summarize, passages, doc.language, self.settings.language,
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
        """Embed passages with no cached vector (synchronous: CLI indexing and the worker call it)."""
        model_id = self.models.encoder_id
        missing = self.store.missing_embeddings(model_id)
        for start in range(0, len(missing), batch):
            chunk = missing[start:start + batch]
            vectors = self.models.encoder.embed_passages([text for _, text in chunk])
            self.store.save_embeddings(model_id, [(digest, vec) for (digest, _), vec in zip(chunk, vectors)])
            progress(len(chunk))
        return len(missing)

    # -- chat state ------------------------------------------------------------------------------
    def record_feedback(self, platform: str, user_id: str, subject: str, vote: int) -> None:
        self.store.record_feedback(platform, user_id, subject, 1 if vote > 0 else -1)

    def first_delivery(self, key: str) -> bool:
        return self.store.first_delivery(key)

    def status(self) -> dict[str, Any]:
        from bot.core.feeds import feed_status

        status = {
            "documents": len(self.store.documents()),
            "passages": self.store.passage_count(),
            "retrieval model": self.models.encoder_id,
            "summarizer": self.models.summarizer_id,
            "database": self.settings.db_path,
        }
        status.update(feed_status(self.store))
        return status


def open_service(settings: Settings, clock: Callable[[], dt.datetime] = utc_now) -> Service:
    return Service(settings, Store.open(settings.db_path), Models.from_settings(settings), clock)
