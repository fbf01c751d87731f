"""digestbot benchmarks: `bench/run [--quick] [--stages index,search,ask,digest,adapters,load,peers]`.

Every stage runs in a child process of its own, so each reports its own RSS high-water mark and
no stage's memory (a 1M-passage vector matrix) or warm caches leak into the next. Figures print as
a table and go to bench/results/<name>.json together with machine information.

All code paths are the real ones: `build_document` + `Store.replace_document`, `Service.embed_missing`,
`Retriever.search`, `Service.handle`. Synthetic parts are named where they are used: Zipf text for
indexing and search, and random unit vectors standing in for passage embeddings above the sample
that the real encoder embeds.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench import corpus  # noqa: E402
from bench.report import (StageResult, machine_info, not_measured, peak_rss_mb, percentiles,  # noqa: E402
                          print_stage, print_summary, write_results)
from bot.adapters.console import ConsolePoster  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.core.answer import answer_question  # noqa: E402
from bot.core.ingest import build_document, index_paths  # noqa: E402
from bot.core.values import Actor, Request, Target  # noqa: E402
from bot.core.retrieve import Retriever  # noqa: E402
from bot.core.service import ASK_PASSAGES, Service  # noqa: E402
from bot.core.store import Store  # noqa: E402
from summarizer import Models  # noqa: E402
from summarizer.text import split_sentences  # noqa: E402

FULL_SIZES = (1_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 100_000)
MIN_SAMPLES = 10
ASK_QUESTIONS = [
    "Who became interim CEO of OpenAI?",
    "Why was Sam Altman fired by the OpenAI board?",
    "Which OpenAI co-founders will lead Microsoft's Advanced AI Research Team?",
    "What did Satya Nadella say after Altman was ousted?",
    "Did Greg Brockman resign from OpenAI?",
    "What is Ilya Sutskever's new startup about?",
    "Why are investors betting on Ilya's company?",
    "What did Ilya see in 2014?",
    "Which model did Meta release in April 2025?",
    "What is PaperBench?",
    "What did xAI buy?",
    "What is the capital of Australia?",  # nothing in the seeds answers this: exercises abstention
]


@dataclass(frozen=True)
class Options:
    quick: bool
    cache: bool = True

    def pick(self, quick, full):
        return quick if self.quick else full


def size_label(size: int) -> str:
    for unit, scale in (("M", 1_000_000), ("k", 1000)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def _settings(db_path: Path):
    return dataclasses.replace(Settings.from_env({}), db_path=str(db_path), docs=(str(corpus.SEEDS),))


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


async def _timed_async(awaitable) -> float:
    started = time.perf_counter()
    await awaitable
    return time.perf_counter() - started


# -- stage 1: indexing throughput ---------------------------------------------------------------------
def stage_index(opts: Options) -> StageResult:
    """Passages/s through the real ingest path, the real encoder's throughput, and bulk-load rates."""
    result = StageResult("index")
    zipf = corpus.Zipf(corpus.vocabulary())
    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        # Without embeddings: build_document (clean, split, hash) + replace_document (FTS triggers).
        texts = corpus.document_texts(zipf, seed=11, count=opts.pick(50, 400))
        store = Store.open(work / "ingest.db")
        build_s = store_s = 0.0
        passages = 0
        for n, text in enumerate(texts):
            started = time.perf_counter()
            doc, clean, parts = build_document(text, path=f"synthetic/{n}.txt")
            built = time.perf_counter()
            store.replace_document(doc, clean, parts)
            build_s += built - started
            store_s += time.perf_counter() - built
            passages += len(parts)
        store.close()
        index_rate = passages / (build_s + store_s)
        result.figures.update({
            "ingest documents": len(texts), "ingest passages": passages,
            "build_document passages/s": round(passages / build_s, 1),
            "replace_document passages/s": round(passages / store_s, 1),
            "index passages/s (no embeddings)": round(index_rate, 1),
        })

        # With embeddings: Service.embed_missing with the real encoder on a small synthetic sample.
        settings = _settings(work / "embed.db")
        models = Models.from_settings(settings)
        result.figures["e5 load s"] = round(_timed(lambda: models.encoder), 2)
        service = Service(settings, Store.open(settings.db_path), models)
        sample = corpus.document_texts(zipf, seed=12, count=1, passages=opts.pick(12, 48))[0]
        doc, clean, parts = build_document(sample, path="synthetic/sample.txt")
        service.store.replace_document(doc, clean, parts)
        embed_s = _timed(service.embed_missing)
        service.close()
        embed_rate = len(parts) / embed_s
        result.figures.update({
            "embed_missing sample passages": len(parts),
            "embed_missing passages/s (e5)": round(embed_rate, 2),
            "index passages/s (with embeddings)": round(1 / (1 / index_rate + 1 / embed_rate), 2),
        })

        # The encoders on the seeds: e5 (retrieval, answers) and MiniLM (extractive summaries).
        seed_passages = [p[2] for f in sorted(corpus.SEEDS.glob("*.txt"))
                         for p in build_document(f.read_text("utf-8"), path=f.name)[2]]
        rng = np.random.default_rng(5)
        picked = [seed_passages[i] for i in rng.permutation(len(seed_passages))[:opts.pick(12, 48)]]
        sentences = [s for p in seed_passages for s in split_sentences(p) if len(s.split()) >= 4]
        sentences = [sentences[i] for i in rng.permutation(len(sentences))[:opts.pick(48, 192)]]
        e5 = models.encoder
        result.figures["e5 seed passages/s"] = round(len(picked) / _timed(lambda: e5.embed_passages(picked)), 2)
        result.figures["e5 seed sentences/s"] = round(
            len(sentences) / _timed(lambda: e5.embed_passages(sentences)), 2)
        result.figures["minilm load s"] = round(_timed(lambda: models.summary_encoder), 2)
        result.figures["minilm seed sentences/s"] = round(
            len(sentences) / _timed(lambda: models.summary_encoder.embed_passages(sentences)), 2)
        result.figures["model threads"] = settings.model_threads

        # Bulk loading as the large benchmark corpora are built: plain SQL inserts through the real
        # schema and triggers, then synthetic unit vectors through Store.save_embeddings.
        built = corpus.build_corpus(opts.pick(5_000, 20_000), models.encoder_id, directory=work, reuse=False)
        result.figures.update({
            "bulk insert passages": built.passages,
            "bulk insert passages/s": round(built.passages / built.build_s, 1),
            "save_embeddings vectors/s": round(built.passages / built.embed_s, 1),
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


# -- stage 2: search latency ---------------------------------------------------------------------------
def stage_search(opts: Options, size: int) -> StageResult:
    """BM25-only and hybrid search latency over a synthetic corpus of `size` passages."""
    result = StageResult(f"search {size_label(size)}")
    models = Models.from_settings(Settings.from_env({}))
    built = corpus.build_corpus(size, models.encoder_id, reuse=opts.cache)
    result.figures.update({
        "passages": built.passages, "documents": built.documents,
        "database MB": round(built.path.stat().st_size / 2**20, 1),
        "corpus": "cached in " + str(corpus.CACHE_DIR) if built.cached else "built now",
    })
    if not built.cached:
        result.figures["build: bulk insert s"] = round(built.build_s, 1)
        result.figures["build: synthetic vectors s"] = round(built.embed_s, 1)
    store = Store.open(built.path)
    encoder = models.encoder
    retriever = Retriever(store, lambda: encoder, models.encoder_id)
    result.figures["dense index load s"] = round(
        _timed(lambda: retriever.dense.refresh(store, models.encoder_id)), 2)

    zipf = corpus.Zipf(corpus.vocabulary())
    content = corpus.Zipf(zipf.words[100:])
    rng = np.random.default_rng(size)
    count = opts.pick(40, 200 if size < 1_000_000 else 100)
    budget = opts.pick(10.0, 30.0 if size <= 1000 else 60.0)
    mixes = {"zipf": zipf.queries(rng, count), "content": content.queries(rng, count)}
    for query in mixes["zipf"][:3]:  # warm the page cache and the encoder
        retriever.search(query, dense=True)
    ratios = []
    for mix, queries in mixes.items():
        bm25, hybrid, empty = [], [], 0
        deadline = time.perf_counter() + budget
        for query in queries:  # interleaved, so machine noise hits both modes alike
            hits = []
            bm25.append(_timed(lambda: hits.extend(retriever.search(query, dense=False))))
            hybrid.append(_timed(lambda: retriever.search(query, dense=True)))
            empty += not hits
            if time.perf_counter() > deadline and len(bm25) >= MIN_SAMPLES:
                break
        result.figures.update(percentiles(bm25, f"{mix} bm25"))
        result.figures.update(percentiles(hybrid, f"{mix} hybrid"))
        result.figures[f"{mix} bm25 queries with no hit"] = empty
        ratios.append((mix, np.median(np.array(hybrid) / np.array(bm25))))
        if mix == "zipf":
            p95 = lambda xs: float(np.percentile(xs, 95) * 1000)  # noqa: E731
            if size == 100_000:
                result.check("bm25 p95 @100k", p95(bm25), 50)
                result.check("hybrid p95 @100k", p95(hybrid), 150)
            elif size == 1_000_000:
                result.check("hybrid p95 @1M", p95(hybrid), 300)
    for mix, ratio in ratios:
        result.figures[f"{mix} hybrid/bm25 median ratio"] = round(float(ratio), 2)

    # Where the time goes: Retriever.search's own steps, each timed alone (medians, zipf mix).
    steps: dict[str, list[float]] = {k: [] for k in (
        "documents()", "bm25 (Retriever._bm25)", "dense (Retriever._dense_by_language)",
        "  of which e5 query encode", "passages_by_id")}
    for query in mixes["zipf"][:opts.pick(5, 15 if size < 1_000_000 else 5)]:
        steps["documents()"].append(_timed(store.documents))
        ids = []
        steps["bm25 (Retriever._bm25)"].append(_timed(lambda: ids.extend(retriever._bm25(query, None))))
        steps["dense (Retriever._dense_by_language)"].append(_timed(lambda: retriever._dense_by_language(query, None)))
        steps["  of which e5 query encode"].append(_timed(lambda: encoder.embed_queries([query])))
        steps["passages_by_id"].append(_timed(lambda: store.passages_by_id(ids[:20])))
    for step, times in steps.items():
        result.figures[f"step {step} median ms"] = round(float(np.median(times)) * 1000, 2)
    result.notes.append("hybrid: passage vectors are synthetic unit vectors (dim 384); the query vector is "
                        "the real e5 query embedding, so hybrid latency includes encoding the query")
    result.notes.append("zipf = 2-6 words drawn from the corpus distribution (stopwords included, as people "
                        "type them); content = the same without the 100 commonest words")
    store.close()
    return result


# -- stage 3: ask and summaries on the seeds ------------------------------------------------------------
def seeded_db(opts: Options) -> tuple[Path, dict]:
    """The seeds indexed and embedded with the real encoder, cached under CACHE_DIR by content."""
    digest = hashlib.sha1()
    for file in sorted(corpus.SEEDS.iterdir()):
        digest.update(file.name.encode() + file.read_bytes())
    encoder_id = Models.from_settings(Settings.from_env({})).encoder_id
    corpus.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = corpus.CACHE_DIR / f"seeds-{digest.hexdigest()[:10]}-{encoder_id}.db"
    if opts.cache and path.exists():
        return path, {"seed index": "cached in " + str(corpus.CACHE_DIR)}
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    settings = _settings(building)
    service = Service(settings, Store.open(building), Models.from_settings(settings))
    index_s = _timed(lambda: index_paths(service.store, [corpus.SEEDS]))
    embed_s = _timed(service.embed_missing)
    service.store.checkpoint()
    passages = service.store.passage_count()
    service.close()
    building.replace(path)
    return path, {"seed index s": round(index_s, 2), "seed embed s": round(embed_s, 2),
                  "seed passages": passages}


def stage_ask(opts: Options) -> StageResult:
    """Warm /ask latency, cold and cached /summary through Service.handle, on the real seeds; then /ask
    and the CLI batch mode over 100k passages."""
    result = StageResult("ask + summary (seeds), ask at 100k passages")
    source, figures = seeded_db(opts)
    result.figures.update(figures)
    work = Path(tempfile.mkdtemp(prefix="bench-ask-"))
    try:
        shutil.copy(source, work / "seeds.db")  # a fresh copy: no summary is cached yet
        settings = _settings(work / "seeds.db")
        models = Models.from_settings(settings)
        result.figures["e5 load s"] = round(_timed(lambda: models.encoder), 2)
        result.figures["minilm load s"] = round(_timed(lambda: models.summary_encoder), 2)
        service = Service(settings, Store.open(settings.db_path), models)
        asyncio.run(_ask_and_summarize(service, opts, result))
        service.close()
        _ask_at_scale(opts, result, source, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _forget_sentence_vectors(store: Store) -> None:
    """Drop the sentence-vector cache that Service.embed_sentences keeps (models named "<id>#sentence")."""
    store.delete_embeddings("#sentence")


BENCH_ACTOR = Actor("bench", "bench")
BENCH_TARGET = Target("console", "local", "bench")


def _handler(service: Service):
    async def handle(command: str, **args: str):
        reply = await service.handle(Request(command, args, BENCH_ACTOR, BENCH_TARGET))
        if not reply.ok:
            raise RuntimeError(f"/{command} {args} failed: {reply.text}")
        return reply

    return handle


async def _time_asks(service: Service, questions: list[str], result: StageResult, label: str = "") -> None:
    """/ask p50/p95 through Service.handle, each question new (sentence vectors dropped) and repeated."""
    handle = _handler(service)
    for question in ASK_QUESTIONS[:2]:  # warm-up: models, dense index, page cache
        await handle("ask", question=question)
    fresh, repeat, answered = [], [], 0
    for question in questions:
        _forget_sentence_vectors(service.store)  # a question never seen: its hits' sentences are encoded now
        fresh.append(await _timed_async(handle("ask", question=question)))
        started = time.perf_counter()  # asked again: the sentence vectors come from the cache
        reply = await handle("ask", question=question)
        repeat.append(time.perf_counter() - started)
        answered += bool(reply.sources)
    result.figures.update(percentiles(fresh, f"{label}ask new question", (50, 95)))
    result.figures.update(percentiles(repeat, f"{label}ask repeated question", (50, 95)))
    result.figures[f"{label}ask answered with sources"] = f"{answered}/{len(questions)}"
    at = f" {label.strip()}" if label else ""
    result.check(f"ask p95{at}, new question (warm models)", float(np.percentile(fresh, 95) * 1000), 2000)
    result.check(f"ask p95{at}, repeated question", float(np.percentile(repeat, 95) * 1000), 2000)


async def _where_ask_time_goes(service: Service, questions: list[str], result: StageResult,
                               label: str = "") -> None:
    """A new question's time: retrieval, then answer_question encoding the hits' sentences."""
    search_s, answer_s, sentences = [], [], []
    for question in questions:
        _forget_sentence_vectors(service.store)
        hits = []
        search_s.append(await _timed_async(service.in_worker(
            lambda q=question: hits.extend(service.retriever.search(q, limit=ASK_PASSAGES)))))
        answer_s.append(await _timed_async(service.in_worker(
            answer_question, question, hits, service.models.encoder, service.embed_sentences)))
        sentences.append(sum(len(split_sentences(h.passage.text)) for h in hits))
    result.figures[f"{label}new question: search median ms"] = round(float(np.median(search_s)) * 1000, 1)
    result.figures[f"{label}new question: answer_question median ms"] = round(float(np.median(answer_s)) * 1000, 1)
    result.figures[f"{label}sentences in the retrieved passages (median)"] = int(np.median(sentences))


async def _ask_and_summarize(service: Service, opts: Options, result: StageResult) -> None:
    handle = _handler(service)
    questions = ASK_QUESTIONS[:opts.pick(4, len(ASK_QUESTIONS))]
    await _time_asks(service, questions, result)
    await _where_ask_time_goes(service, questions[:opts.pick(2, 6)], result)

    docs = sorted(service.store.documents(), key=lambda d: d.chars)[:opts.pick(2, None)]
    cached = []
    for doc in docs:
        started = time.perf_counter()
        await handle("summary", document=doc.id)
        cold = time.perf_counter() - started
        result.figures[f"cold summary s: {doc.chars:,} chars ({doc.language}) {doc.id}"] = round(cold, 2)
        result.check(f"cold summary {doc.chars:,} chars", cold, 60, "s")
        for _ in range(5):
            started = time.perf_counter()
            await handle("summary", document=doc.id)
            cached.append(time.perf_counter() - started)
    result.figures.update(percentiles(cached, "cached summary", (50, 95)))
    result.check("cached summary p95", float(np.percentile(cached, 95) * 1000), 50)


ASK_SCALE = 100_000


def _ask_at_scale(opts: Options, result: StageResult, seeds: Path, work: Path) -> None:
    """/ask over the synthetic 100k-passage corpus with the embedded seeds added (real e5 vectors for
    the seeds and every query, synthetic ones for the rest), then the CLI batch mode against it."""
    models = Models.from_settings(Settings.from_env({}))
    built = corpus.build_corpus(ASK_SCALE, models.encoder_id, reuse=opts.cache)
    path = work / "ask-100k.db"
    shutil.copy(built.path, path)
    settings = _settings(path)
    service = Service(settings, Store.open(path), Models.from_settings(settings))
    label = f"@{size_label(ASK_SCALE)} "
    result.figures[f"{label}passages (synthetic + seeds)"] = _add_seeds(service, seeds)
    questions = ASK_QUESTIONS[:opts.pick(4, len(ASK_QUESTIONS))]
    asyncio.run(_time_asks(service, questions, result, label))
    asyncio.run(_where_ask_time_goes(service, questions[:opts.pick(2, 6)], result, label))
    _forget_sentence_vectors(service.store)
    service.close()
    _batch_versus_processes(opts, result, settings, label)


def _add_seeds(service: Service, seeds: Path) -> int:
    """Index the seeds into the service's store with the passage vectors of the embedded seed database."""
    index_paths(service.store, [corpus.SEEDS])
    model_id = service.models.encoder_id
    source = Store.open(seeds)
    vectors = source.embeddings(model_id, [digest for digest, _ in service.store.missing_embeddings(model_id)])
    source.close()
    service.store.save_embeddings(model_id, list(vectors.items()))
    service.embed_missing()  # nothing left, unless the seeds changed since their database was built
    return service.store.passage_count()


def _batch_versus_processes(opts: Options, result: StageResult, settings: Settings, label: str) -> None:
    """`digestbot ask --json -` over N new questions (per-question cost from the gaps between its output
    lines; the first line also pays start-up), against one `digestbot ask --json Q` process per question."""
    env = {**os.environ, "DIGESTBOT_DB": settings.db_path}
    command = [sys.executable, "-m", "bot", "ask", "--json"]
    questions = ASK_QUESTIONS[:opts.pick(6, len(ASK_QUESTIONS))]
    started = time.perf_counter()
    batch = subprocess.Popen([*command, "-"], cwd=corpus.ROOT, env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    batch.stdin.write("".join(f"{q}\n" for q in questions))
    batch.stdin.close()
    arrivals = [time.perf_counter() - started for _ in batch.stdout]
    if batch.wait() != 0 or len(arrivals) != len(questions):
        raise RuntimeError(f"ask --json - exited {batch.returncode} after {len(arrivals)}/{len(questions)} lines")
    per_question = np.diff(arrivals)
    result.figures[f"{label}batch: questions"] = len(questions)
    result.figures[f"{label}batch: start-up + first answer s"] = round(arrivals[0], 2)
    result.figures[f"{label}batch: per-question mean ms"] = round(float(per_question.mean()) * 1000, 1)
    result.figures[f"{label}batch: per-question p95 ms"] = round(float(np.percentile(per_question, 95)) * 1000, 1)
    result.figures[f"{label}batch: total s"] = round(arrivals[-1], 2)

    store = Store.open(settings.db_path)
    _forget_sentence_vectors(store)  # the processes answer new questions too
    store.close()
    processes = [_timed(lambda q=q: subprocess.run([*command, q], cwd=corpus.ROOT, env=env, check=True,
                                                   capture_output=True))
                 for q in questions[:opts.pick(2, 3)]]
    result.figures[f"{label}one process per question: mean s"] = round(float(np.mean(processes)), 2)
    result.figures[f"{label}one process per question: n"] = len(processes)
    result.notes.append(f"{label.strip()}: {ASK_SCALE:,} synthetic passages (random unit vectors) plus the seeds "
                        "(real e5 vectors); questions and hit sentences are encoded by the real e5")


# -- stage 4: digest ------------------------------------------------------------------------------------
def stage_digest(opts: Options) -> StageResult:
    """Building (and posting) a digest when 500 new documents with cached summaries wait."""
    from bot.core import digest_post as digest

    result = StageResult("digest (500 new docs)")
    zipf = corpus.Zipf(corpus.vocabulary())
    rng = np.random.default_rng(21)
    work = Path(tempfile.mkdtemp(prefix="bench-digest-"))
    try:
        settings = _settings(work / "digest.db")
        models = Models.from_settings(settings)
        service = Service(settings, Store.open(settings.db_path), models)
        for n, text in enumerate(corpus.document_texts(zipf, seed=21, count=500, passages=3)):
            doc, clean, parts = build_document(text, path=f"feed/{n:03d}.txt", published=f"2025-03-{n % 28 + 1:02d}")
            service.store.replace_document(doc, clean, parts)
            service.store.save_summary(doc.content_hash, models.summarizer_id, settings.language,
                                       zipf.text(rng, 70), "English")
        # cached vectors for story grouping: 100 stories of 5 documents (passages in id order, 3 a document)
        hashes = service.store.passage_hashes()
        centres = rng.standard_normal((100, 384))
        vectors = centres[(np.arange(len(hashes)) // 3) % 100] + 0.5 * rng.standard_normal((len(hashes), 384))
        service.store.save_embeddings(models.encoder_id, list(zip(hashes, vectors / np.linalg.norm(
            vectors, axis=1, keepdims=True))))
        result.figures["new documents"] = len(service.store.documents())
        result.figures["items per digest (MAX_ITEMS)"] = digest.MAX_ITEMS
        asyncio.run(_digest(service, opts, result, digest))
        service.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


async def _digest(service: Service, opts: Options, result: StageResult, digest) -> None:
    import io

    builds = []
    for _ in range(opts.pick(3, 10)):
        started = time.perf_counter()
        batch = await digest.build_items(service, BENCH_TARGET)
        builds.append(time.perf_counter() - started)
    result.figures.update(percentiles(builds, "build_items", (50, 95)))
    result.figures["items built / left for later"] = f"{len(batch.items)} / {batch.remaining}"
    result.check("digest build p95 (500 new, cached summaries)", float(np.percentile(builds, 95) * 1000), 1000)
    capped, digest.MAX_ITEMS = digest.MAX_ITEMS, len(service.store.documents())  # every item, had no cap
    try:
        result.figures["build_items uncapped ms (all 500 items)"] = round(
            await _timed_async(digest.build_items(service, BENCH_TARGET)) * 1000, 2)
        started = time.perf_counter()
        items = (await digest.build_items(service, BENCH_TARGET)).items
        found = digest.find_stories(service, BENCH_TARGET, items)
        grouped_ms = (time.perf_counter() - started) * 1000
        result.figures["stories in the uncapped digest (grouped / all)"] = (
            f"{sum(story.grouped for story in found)} / {len(found)}")
        result.check("digest build with stories (500 items, cached vectors and summaries)", grouped_ms, 1000)
    finally:
        digest.MAX_ITEMS = capped

    previews = []
    for _ in range(opts.pick(3, 10)):
        started = time.perf_counter()
        reply = await service.handle(Request("digest preview", {}, BENCH_ACTOR, BENCH_TARGET))
        previews.append(time.perf_counter() - started)
    if not reply.ok:
        raise RuntimeError(f"/digest preview failed: {reply.text}")
    result.figures.update(percentiles(previews, "/digest preview", (50, 95)))

    out = io.StringIO()
    service.register_poster("console", ConsolePoster(out))
    started = time.perf_counter()
    admin = dataclasses.replace(BENCH_ACTOR, is_admin=True)  # a member's /digest now is only a preview
    reply = await service.handle(Request("digest now", {}, admin, BENCH_TARGET))
    posted = time.perf_counter() - started
    if not reply.ok:
        raise RuntimeError(f"/digest now failed: {reply.text}")
    result.figures["/digest now ms (build, record, post to console)"] = round(posted * 1000, 2)
    result.figures["posted digest chars"] = len(out.getvalue())
    result.check("/digest now (500 new)", posted * 1000, 1000)


# -- stage 5: adapters ----------------------------------------------------------------------------------
SLACK_SECRET = "bench-signing-secret"
BURST = 50
BURST_COMMANDS = [  # (registry command, args): lookups, model work and instant answers, as people mix them
    ("search", {"query": "OpenAI board"}), ("ask", {"question": "Who became interim CEO of OpenAI?"}),
    ("status", {}), ("help", {}), ("sources", {}), ("search", {"query": "Ilya Sutskever startup"}),
]


def stage_adapters(opts: Options) -> StageResult:
    """Time to acknowledge 50 concurrent slash commands per platform while a long summary runs."""
    name = "adapters (50 concurrent slash commands per platform)"
    try:
        from bot.adapters import discord_bot, slack_app  # noqa: F401
        from tests import fake_discord, fake_slack  # noqa: F401
    except ImportError as exc:
        return not_measured(name, f"adapters not ready ({exc})")
    result = StageResult(name)
    source, _ = seeded_db(opts)
    work = Path(tempfile.mkdtemp(prefix="bench-adapters-"))
    try:
        shutil.copy(source, work / "seeds.db")  # fresh copy: the long summary is not cached
        settings = _settings(work / "seeds.db")
        models = Models.from_settings(settings)
        models.encoder, models.summary_encoder  # loaded up front: the burst measures acks, not loading
        service = Service(settings, Store.open(settings.db_path), models)
        asyncio.run(_burst(service, result))
        service.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


async def _burst(service: Service, result: StageResult) -> None:
    import logging

    from bot.adapters import discord_bot
    from bot.adapters.slack_app import EVENTS_PATH, SlackAdapter
    from tests.fake_discord import TOKEN, FakeDiscord
    from tests.fake_slack import HOST, FakeSlack, form_body, post_signed, slash_command

    logging.basicConfig(level=logging.ERROR)
    longest = max(service.store.documents(), key=lambda d: d.chars)
    async with FakeDiscord() as discord_fake, FakeSlack() as slack_fake:
        settings = dataclasses.replace(
            service.settings, discord_token=TOKEN, discord_api_base=discord_fake.api_base,
            discord_gateway_url=discord_fake.gateway_url, discord_guild_id=discord_fake.guild_id,
            slack_bot_token=slack_fake.bot_token, slack_signing_secret=SLACK_SECRET,
            slack_api_url=slack_fake.api_url, slack_port=0)
        discord_task = asyncio.create_task(discord_bot.run(service, settings))
        slack = SlackAdapter(service, settings)
        await slack.start(host=HOST)
        try:
            await discord_fake.wait_ready(timeout=30)
            summary = discord_fake.slash("summary", {"document": longest.id})
            summary_started = time.perf_counter()
            await discord_fake.dispatch("INTERACTION_CREATE", summary)
            await discord_fake.wait_for("POST", _callback_path(summary), timeout=30)

            async def discord_ack(n: int) -> float:
                command, args = BURST_COMMANDS[n % len(BURST_COMMANDS)]
                payload = discord_fake.slash(command, args)
                sent = time.monotonic()
                await discord_fake.dispatch("INTERACTION_CREATE", payload)
                call = await discord_fake.wait_for("POST", _callback_path(payload), timeout=60)
                return call.at - sent

            async def slack_ack(n: int) -> float:
                command, args = BURST_COMMANDS[n % len(BURST_COMMANDS)]
                text = " ".join([command, *args.values()])
                body = form_body(slash_command(text, response_url=slack_fake.response_url(f"b{n}")))
                status, _, seconds = await post_signed(f"http://{HOST}:{slack.port}{EVENTS_PATH}", body,
                                                       secret=SLACK_SECRET,
                                                       content_type="application/x-www-form-urlencoded", timeout=60)
                if status != 200:
                    raise RuntimeError(f"Slack slash command answered HTTP {status}")
                return seconds

            burst_started = time.perf_counter()
            acks = await asyncio.gather(*(discord_ack(n) for n in range(BURST)),
                                        *(slack_ack(n) for n in range(BURST)))
            burst_s = time.perf_counter() - burst_started
            summary_running = not discord_fake.calls_to("POST", rf"/webhooks/{discord_fake.app_id}/{summary['token']}")
        finally:
            discord_task.cancel()
            await asyncio.gather(discord_task, return_exceptions=True)
            await slack.stop()
    for platform, times in (("discord", acks[:BURST]), ("slack", acks[BURST:])):
        result.figures.update(percentiles(times, f"{platform} ack"))
        result.figures[f"{platform} ack max ms"] = round(max(times) * 1000, 2)
        result.check(f"{platform} ack p99 (50 concurrent)", float(np.percentile(times, 99) * 1000), 1000)
    result.figures["burst wall s (100 commands)"] = round(burst_s, 2)
    result.figures["long summary"] = f"/summary of {longest.chars:,} chars over Discord, acknowledged " \
                                     f"{burst_started - summary_started:.2f} s before the burst"
    result.figures["long summary still running after the burst"] = "yes" if summary_running else "no"
    result.notes.append("ack = Discord interaction callback (defer or answer) arriving at the fake, counted from "
                        "the gateway dispatch; Slack = HTTP response to the signed slash-command POST. "
                        "Target: issue 8's 1 s (the platforms allow 3 s)")
    if not summary_running:
        result.notes.append("the long summary finished before the burst ended: acks were not all measured "
                            "under model load")


def _callback_path(payload: dict) -> str:
    return rf"/interactions/{payload['id']}/{payload['token']}/callback"


# -- driver ---------------------------------------------------------------------------------------------
# Stages that live in modules of their own, each exposing `stage(opts) -> StageResult`.
MODULE_STAGES = {"load:search": "bench.load", "load:fetch": "bench.fetch_bomb", "peers": "bench.peers"}
STAGES = ("index", "search", "ask", "digest", "adapters", "load", "peers")


def stage_ids(stages: list[str], sizes: tuple[int, ...]) -> list[str]:
    ids = []
    for stage in stages:
        if stage == "search":
            ids += [f"search:{size}" for size in sizes]
        elif stage == "load":
            ids += ["load:search", "load:fetch"]
        else:
            ids.append(stage)
    return ids


def run_stage(stage_id: str, opts: Options) -> StageResult:
    name, _, size = stage_id.partition(":")
    functions = {"index": stage_index, "ask": stage_ask, "digest": stage_digest, "adapters": stage_adapters}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    if stage_id in MODULE_STAGES:
        result = importlib.import_module(MODULE_STAGES[stage_id]).stage(opts)
    elif name == "search":
        result = stage_search(opts, int(size))
    else:
        result = functions[name](opts)
    result.seconds = round(time.perf_counter() - started, 1)
    result.peak_rss_mb = peak_rss_mb()
    result.load_average = round((load + os.getloadavg()[0]) / 2, 2)
    return result


def run_in_child(stage_id: str, opts: Options) -> StageResult:
    """Run one stage in a fresh interpreter (its own RSS high-water mark); a crash becomes a note."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "bench.run", "--child", stage_id, "--child-out", str(out),
                   "--child-options", json.dumps(dataclasses.asdict(opts))]
        proc = subprocess.run(command, cwd=corpus.ROOT)
        if proc.returncode != 0 or not out.exists():
            return not_measured(stage_id, f"stage crashed (exit status {proc.returncode}); see its output above")
        return StageResult.from_json(json.loads(out.read_text("utf-8")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/run", description="Benchmark indexing, search, /ask, summaries, digests and chat acks.",
        epilog=f"Corpora and the embedded seeds are cached in {corpus.CACHE_DIR}: the first run builds them "
               "(the 1M-passage database takes minutes), later runs reuse them.")
    parser.add_argument("--quick", action="store_true",
                        help="a ~2 minute subset once caches exist (sizes 1k and 100k, fewer samples)")
    parser.add_argument("--stages", default="index,search,ask,digest,adapters",
                        help=f"comma-separated stages to run, of {','.join(STAGES)} "
                             "(default: index,search,ask,digest,adapters)")
    parser.add_argument("--sizes", help="comma-separated corpus sizes for the search stage (passages)")
    parser.add_argument("--name", help="results file name under bench/results/ (default: quick or full)")
    parser.add_argument("--no-cache", action="store_true",
                        help=f"rebuild the synthetic and seed databases cached in {corpus.CACHE_DIR}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--child-options", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = run_stage(args.child, Options(**json.loads(args.child_options)))
        Path(args.child_out).write_text(json.dumps(result.to_json()), encoding="utf-8")
        return 0

    opts = Options(quick=args.quick, cache=not args.no_cache)
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else opts.pick(QUICK_SIZES, FULL_SIZES)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages: {', '.join(sorted(unknown))}")
    info = machine_info()
    print(f"digestbot bench ({'quick' if opts.quick else 'full'}): {info['cpus_usable']} CPUs, "
          f"load {info['load_average']}, Python {info['python']}, torch {info['torch']}, "
          f"SQLite {info['sqlite']}\n", flush=True)
    started = time.perf_counter()
    results = []
    for stage_id in stage_ids(stages, sizes):
        results.append(run_in_child(stage_id, opts))
        print_stage(results[-1])
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    info["total_seconds"] = round(time.perf_counter() - started, 1)
    print_summary(results)
    path = write_results(args.name or ("quick" if opts.quick else "full"),
                         {"quick": opts.quick, "stages": stages, "sizes": list(sizes), "cache": opts.cache},
                         info, results)
    print(f"total {info['total_seconds']:.0f} s; results in {path.relative_to(corpus.ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
