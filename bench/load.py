"""Stage load:search — lookups while heavy work runs, through the real Service.

(a) On the embedded seeds: a 1 MB plain-text document is uploaded (`add_bytes`, the code path of
    /add and attachments) while 20 clients keep sending /search through `Service.handle`. Figures:
    how long the upload took to reply, search p50/p95/p99 while it was indexed and embedded in the
    background, and how far the background embedding got.
(b) On the cached synthetic 100k-passage corpus (as the search stage builds it; passage vectors
    are synthetic, query vectors real e5): hybrid search p95 with no background work, then while
    the background embedder fills in the vectors of a newly indexed document.
"""
from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import corpus
from bench.report import StageResult, percentiles
from bench.run import BENCH_ACTOR, BENCH_TARGET, Options, _settings, seeded_db, size_label
from bot.config import Settings
from bot.core.fetch import add_bytes
from bot.core.ingest import build_document
from bot.core.values import Request
from bot.core.service import Service
from bot.core.store import Store
from summarizer import Models

CLIENTS = 20
UPLOAD_CHARS = 1_000_000
SCALE = 100_000


def stage(opts: Options) -> StageResult:
    result = StageResult("load: search while a document is added")
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        source, figures = seeded_db(opts)
        result.figures.update(figures)
        asyncio.run(_searches_during_upload(opts, result, source, work))
        asyncio.run(_hybrid_at_scale_while_embedding(opts, result, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.figures["model threads (lookups / background share)"] = _thread_split()
    return result


def _thread_split() -> str:
    models = Models.from_settings(Settings.from_env())
    return f"{models.threads} ({models.interactive_threads} / {models.bulk_threads} while embedding)"


def upload_text(chars: int = UPLOAD_CHARS) -> str:
    """About `chars` characters of Zipf text in passage-sized paragraphs."""
    zipf = corpus.Zipf(corpus.vocabulary())
    text = corpus.document_texts(zipf, seed=21, count=1, passages=chars // 600)[0]
    while len(text) < chars:
        text += "\n\n" + corpus.document_texts(zipf, seed=len(text), count=1, passages=50)[0]
    return "Load test upload\n\n" + text[:chars]


async def _searches_during_upload(opts: Options, result: StageResult, seeds: Path, work: Path) -> None:
    path = work / "seeds.db"
    shutil.copy(seeds, path)
    settings = _settings(path)
    service = Service(settings, Store.open(path), Models.from_settings(settings))
    service.models.encoder, service.models.bulk_encoder  # loaded up front: the test measures lookups
    queries = corpus.Zipf(corpus.vocabulary()[100:]).queries(np.random.default_rng(3), 400)
    for query in queries[:3]:
        await _search(service, query)
    text = upload_text()
    window = opts.pick(20.0, 60.0)  # searches go on this long after the upload starts
    latencies: list[float] = []
    started = time.perf_counter()

    async def client(n: int) -> None:
        i = n
        while time.perf_counter() - started < window:
            t0 = time.perf_counter()
            await _search(service, queries[i % len(queries)])
            latencies.append(time.perf_counter() - t0)
            i += CLIENTS

    async def upload() -> float:
        t0 = time.perf_counter()
        reply = await add_bytes(service, BENCH_ACTOR, text.encode(), name="upload.txt", content_type="text/plain",
                                url="https://files.example/upload.txt")
        if not reply.ok:
            raise RuntimeError(f"upload failed: {reply.text}")
        result.notes.append(f"upload reply: {reply.text}")
        return time.perf_counter() - t0

    clients = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
    reply_s = await upload()
    backlog_at_reply = service.store.missing_embedding_count(service.models.encoder_id)
    await asyncio.gather(*clients)
    backlog_at_end = service.store.missing_embedding_count(service.models.encoder_id)
    doc = service.store.document_by_path("https://files.example/upload.txt")
    result.figures.update({
        "(a) upload characters": len(text),
        "(a) upload passages": len(service.store.passages(doc.id)),
        "(a) upload reply s": round(reply_s, 2),
        "(a) passages waiting for vectors at the reply": backlog_at_reply,
        f"(a) passages waiting for vectors after {window:g} s": backlog_at_end,
        "(a) background embedding passages/s": round(service.embedder.rate or 0.0, 1),
        "(a) concurrent search clients": CLIENTS,
    })
    result.figures.update(percentiles(latencies, "(a) /search during the upload"))
    result.check("(a) /search p95, 20 clients, during a 1 MB upload", float(np.percentile(latencies, 95) * 1000),
                 1000)
    service.close()


async def _search(service: Service, query: str) -> None:
    reply = await service.handle(Request("search", {"query": query}, BENCH_ACTOR, BENCH_TARGET))
    if not reply.ok and "No passages match" not in reply.text:
        raise RuntimeError(f"/search {query!r} failed: {reply.text}")


async def _hybrid_at_scale_while_embedding(opts: Options, result: StageResult, work: Path) -> None:
    models = Models.from_settings(Settings.from_env())
    built = corpus.build_corpus(SCALE, models.encoder_id, reuse=opts.cache)
    path = work / "load-100k.db"
    shutil.copy(built.path, path)
    settings = _settings(path)
    service = Service(settings, Store.open(path), models)
    models.encoder, models.bulk_encoder
    zipf = corpus.Zipf(corpus.vocabulary())
    queries = iter(zipf.queries(np.random.default_rng(SCALE), 5000))  # all distinct: no cached query vector
    for _ in range(3):  # the dense matrix, page cache and encoder warm
        await service.search(next(queries))
    label = size_label(SCALE)
    window = opts.pick(15.0, 45.0)

    async def timed() -> list[float]:
        """Searches one after another for `window` seconds."""
        times: list[float] = []
        ends = time.perf_counter() + window
        while time.perf_counter() < ends:
            t0 = time.perf_counter()
            await service.search(next(queries))
            times.append(time.perf_counter() - t0)
        return times

    quiet = await timed()

    # the background job: a new document's passages, indexed (searchable by keywords) but not embedded
    job = corpus.document_texts(zipf, seed=5, count=1, passages=opts.pick(400, 1200))[0]
    doc, clean, parts = build_document(job, path="bench/background-job.txt")
    service.store.replace_document(doc, clean, parts)
    await service.search(next(queries))  # the generation changed: the matrix reloads once, before timing
    waiting = service.store.missing_embedding_count(models.encoder_id)
    service.embed_in_background(len(parts))
    async with asyncio.timeout(300):  # timing starts once the first batch is saved: the job is under way
        while service.store.missing_embedding_count(models.encoder_id) == waiting:
            await asyncio.sleep(0.1)
    before = service.store.missing_embedding_count(models.encoder_id)
    busy = await timed()
    left = service.store.missing_embedding_count(models.encoder_id)
    still_running = service.embedder.active
    result.figures.update(percentiles(quiet, f"(b) hybrid @{label}, no background work", (50, 95)))
    result.figures.update(percentiles(busy, f"(b) hybrid @{label}, background embedding", (50, 95)))
    result.figures[f"(b) passages embedded during the {window:g} s of searches"] = before - left
    result.figures["(b) background job still running at the end"] = str(still_running)
    result.figures["(b) p95 ratio busy / quiet"] = round(float(np.percentile(busy, 95) / np.percentile(quiet, 95)), 2)
    result.check(f"(b) hybrid p95 @{label} while embedding in the background",
                 float(np.percentile(busy, 95) * 1000), 150)
    if not still_running:
        result.notes.append("(b) the background job finished before the searches did: add passages to the job")
    service.close()
