"""Synthetic corpora for the benchmarks: Zipf-distributed real-ish words, written through the real schema.

The vocabulary is the seeds' own words ranked by how often they occur there (so "the", "and", "of"
lead, as in real text), topped up with pronounceable made-up words to VOCAB_SIZE. Word draws follow
Zipf's law over that ranking, so FTS5 posting lists have realistic lengths: common words hit nearly
every passage, rare ones a handful. Queries are drawn from the same distribution.

Large corpora are bulk-inserted as prepared rows (`Store.load_rows`, skipping ingest) into a database
with the real migrations, so the FTS5 triggers index every passage, with synthetic unit vectors saved
through `Store.save_embeddings`. Built databases are cached under CACHE_DIR keyed by size and fingerprint.
"""
from __future__ import annotations

import collections
import datetime as dt
import hashlib
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.core.ingest import content_hash
from bot.core.store import Store

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
CACHE_DIR = Path("/tmp/digestbot-bench")
VOCAB_SIZE = 5000
ZIPF_S = 1.0
PASSAGE_WORDS = (80, 160)  # uniform; the seeds' passages average ~110 words
SENTENCE_WORDS = (6, 22)
PASSAGES_PER_DOC = 20  # the seeds average ~34 passages per document; feeds bring shorter ones
DIM = 384  # multilingual-e5-small
CHUNK = 20_000  # passages per transaction / generation batch
CORPUS_VERSION = 1  # bump when generation changes, to invalidate cached databases
_SYLLABLES = ("ka ri to mo sa ne lu vi en ar ol is um te pa do ge bra sto fin mel cor dan tel ver "
              "quo lin ber tra pol sen gar hun mir").split()


def log(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def vocabulary(size: int = VOCAB_SIZE) -> list[str]:
    """The seeds' alphabetic words by descending frequency, then made-up words up to `size`."""
    counts = collections.Counter(
        w for f in sorted(SEEDS.glob("*.txt")) for w in re.findall(r"[a-z]+", f.read_text("utf-8").lower())
        if len(w) > 1 or w in ("a", "i"))
    words = [w for w, _ in counts.most_common(size)]
    rng = np.random.default_rng(7)
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 5))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@dataclass
class Zipf:
    """Draws word ranks with P(rank r) proportional to 1 / r**s."""

    words: list[str]
    s: float = ZIPF_S

    def __post_init__(self) -> None:
        weights = 1.0 / np.arange(1, len(self.words) + 1) ** self.s
        self.cdf = np.cumsum(weights / weights.sum())

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.words) - 1)

    def text(self, rng: np.random.Generator, n_words: int) -> str:
        """Sentences of Zipf words, capitalised and full-stopped (so sentence splitting has work)."""
        picks = self.draw(rng, n_words).tolist()
        words = self.words
        sentences, i = [], 0
        while i < n_words:
            size = int(rng.integers(*SENTENCE_WORDS))
            chunk = " ".join([words[k] for k in picks[i:i + size]])
            sentences.append(chunk[:1].upper() + chunk[1:] + ".")
            i += size
        return " ".join(sentences)

    def queries(self, rng: np.random.Generator, count: int, words: tuple[int, int] = (2, 6)) -> list[str]:
        return [" ".join(self.words[k] for k in self.draw(rng, int(rng.integers(words[0], words[1] + 1))))
                for _ in range(count)]


def fingerprint(zipf: Zipf) -> str:
    spec = repr((CORPUS_VERSION, zipf.words, zipf.s, PASSAGE_WORDS, SENTENCE_WORDS, PASSAGES_PER_DOC, DIM))
    return hashlib.sha1(spec.encode()).hexdigest()[:10]


def passage_texts(zipf: Zipf, rng: np.random.Generator, count: int) -> list[str]:
    return [zipf.text(rng, int(rng.integers(*PASSAGE_WORDS))) for _ in range(count)]


def document_texts(zipf: Zipf, seed: int, count: int, passages: int = PASSAGES_PER_DOC) -> list[str]:
    """Whole documents (paragraphs of passage size) to push through `build_document`."""
    rng = np.random.default_rng(seed)
    return ["\n\n".join(passage_texts(zipf, rng, passages)) for _ in range(count)]


def unit_vectors(rng: np.random.Generator, count: int, dim: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _doc_rows(zipf: Zipf, rng: np.random.Generator, first_doc: int, docs: int) -> Iterator[tuple[tuple, list[tuple]]]:
    """(documents row, passages rows) per synthetic document, offsets as the real splitter records them."""
    start_day = dt.date(2023, 1, 1)
    for n in range(first_doc, first_doc + docs):
        bodies = passage_texts(zipf, rng, PASSAGES_PER_DOC)
        text = "\n\n".join(bodies)
        doc_id = f"bench-{n:07d}"
        published = None if n % 5 == 0 else (start_day + dt.timedelta(days=n % 900)).isoformat()
        title = zipf.text(rng, 6).rstrip(".")
        passages, cursor = [], 0
        for ordinal, body in enumerate(bodies):
            passages.append((doc_id, ordinal, cursor, cursor + len(body), body, content_hash(body)))
            cursor += len(body) + 2
        yield ((doc_id, f"bench/{n:07d}.txt", None, title, "en", published, "2025-01-01T00:00:00+00:00",
                content_hash(text), len(text), text), passages)


@dataclass
class BuiltCorpus:
    path: Path
    passages: int
    documents: int
    build_s: float | None  # None when reused from the cache
    embed_s: float | None
    cached: bool


def build_corpus(passages: int, model_id: str, *, directory: Path = CACHE_DIR, reuse: bool = True,
                 seed: int = 1) -> BuiltCorpus:
    """A database of `passages` synthetic passages (PASSAGES_PER_DOC per document) with vectors for
    `model_id`, in `directory`; with `reuse`, one built earlier with the same parameters is returned."""
    zipf = Zipf(vocabulary())
    docs = max(1, passages // PASSAGES_PER_DOC)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"corpus-{docs * PASSAGES_PER_DOC}-{fingerprint(zipf)}-{model_id}.db"
    if reuse and path.exists():
        store = Store.open(path)
        done = store.meta("bench_complete")
        store.close()
        if done:
            return BuiltCorpus(path, docs * PASSAGES_PER_DOC, docs, None, None, cached=True)
    for stale in directory.glob(path.name + "*"):
        stale.unlink()
    rng = np.random.default_rng(seed)
    store = Store.open(path, bulk_load=True)
    started = time.perf_counter()
    rows = _doc_rows(zipf, rng, 0, docs)
    per_batch = max(1, CHUNK // PASSAGES_PER_DOC)
    for first in range(0, docs, per_batch):
        batch = [next(rows) for _ in range(min(per_batch, docs - first))]
        store.load_rows([d for d, _ in batch], [(None, *p) for _, ps in batch for p in ps])
        if (first // per_batch) % 10 == 9:
            log(f"{first + len(batch):,}/{docs:,} documents inserted")
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    hashes = store.passage_hashes()
    for first in range(0, len(hashes), CHUNK):
        chunk = hashes[first:first + CHUNK]
        store.save_embeddings(model_id, list(zip(chunk, unit_vectors(rng, len(chunk)))))
    embed_s = time.perf_counter() - started
    store.set_meta("bench_complete", fingerprint(zipf))
    store.checkpoint()
    store.close()
    return BuiltCorpus(path, docs * PASSAGES_PER_DOC, docs, build_s, embed_s, cached=False)
