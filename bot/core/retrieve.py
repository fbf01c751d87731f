"""Hybrid passage search: safe FTS5 BM25 plus dense vectors, fused with reciprocal-rank fusion."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from bot.core.values import Document, Hit, UserError
from bot.core.store import Store
from summarizer.encoder import Encoder
from summarizer.text import clean_control

MAX_QUERY_CHARS = 2000
MAX_TERMS = 32
RRF_K = 60
CANDIDATES = 50
# Common-word pruning for BM25 applies from this many passages, to words in more than this share.
SELECTIVE_FROM = 20_000
COMMON_SHARE = 0.05
# Question words that only add noise to an OR-query: they never select passages (unless a query has
# nothing else); on a large index they refine the ranking like common words (Retriever._bm25).
_QUESTION_WORDS = frozenset("""a an and are as at be been but by can did do does for from had has have how i if in
into is it its me my of on or our so than that the their them then there these they this to was we were what
when where which who whom why will with would you your der die das und ist ein eine einer wer wie was wo warum
welche welcher von zu mit den dem des im nicht auch sich hat haben wurde""".split())


def query_terms(tokens: list[str]) -> list[str]:
    """The distinct tokens of a query (`Store.tokenize`), at most MAX_TERMS."""
    return list(dict.fromkeys(tokens))[:MAX_TERMS]


def clean_query(text: str) -> str:
    """Validate a query: one short line of printable text, or a UserError saying what is wrong."""
    text = " ".join(clean_control(text or "").split())
    if not text:
        raise UserError("Type something to search for.")
    if len(text) > MAX_QUERY_CHARS:
        raise UserError(f"Query too long: {len(text):,} characters (at most {MAX_QUERY_CHARS:,}).")
    return text


def parse_since(value: str | None) -> str | None:
    """`YYYY-MM-DD` (or a full ISO timestamp) -> its day as an ISO string to compare with document dates.

    The whole value must be a date or timestamp: `2024-01-01garbage` is refused, not read as its first ten characters.
    """
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.strip()).date().isoformat()
    except ValueError:
        raise UserError(f"Bad date {value.strip()[:40]!r}: use YYYY-MM-DD.") from None


@dataclass
class DenseIndex:
    """Passage vectors held in memory: reloaded when the store's generation changes, and topped up
    when vectors are saved without a document changing (new passages are embedded in the
    background, after they were indexed; a passage with no vector yet is simply not ranked)."""

    generation: int = -1
    vectors: int = -1  # Store.vectors_version at the last load or top-up
    ids: np.ndarray | None = None
    matrix: np.ndarray | None = None
    unembedded: np.ndarray | None = None  # passage ids that had no vector then
    recent: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # top-ups since the load

    def refresh(self, store: Store, model: str) -> None:
        generation, vectors = store.generation(), store.vectors_version(model)
        if generation != self.generation:
            self.ids, self.matrix = store.passage_vectors(model)
            self.unembedded = np.setdiff1d(store.passage_id_array(), self.ids)
            self.recent = []
        elif vectors != self.vectors and len(self.unembedded):
            ids, matrix = store.passage_vectors_of(model, self.unembedded)
            if len(ids):  # a small matrix of its own: no copy of the big one per top-up
                self.recent.append((ids, matrix))
                self.unembedded = np.setdiff1d(self.unembedded, ids)
                if len(self.recent) > 16:  # many small top-ups: merged into one
                    self.recent = [(np.concatenate([i for i, _ in self.recent]),
                                    np.concatenate([m for _, m in self.recent]))]
        self.generation, self.vectors = generation, vectors

    def top(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        parts = [(ids, matrix) for ids, matrix in [(self.ids, self.matrix), *self.recent]
                 if matrix is not None and len(matrix)]
        if not parts:
            return []
        # torch multiplies the float16 matrix in place: no float32 copy of a million vectors per query
        vector = torch.from_numpy(query.astype(np.float16))
        scores = np.concatenate([torch.mv(torch.from_numpy(matrix), vector).float().numpy() for _, matrix in parts])
        ids = np.concatenate([ids for ids, _ in parts]) if len(parts) > 1 else parts[0][0]
        if allowed is not None:
            scores = np.where(np.isin(ids, allowed), scores, -np.inf)
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        return [(int(ids[i]), float(scores[i])) for i in best if np.isfinite(scores[i])]


@dataclass
class DocumentTable:
    """Every document's metadata and every passage's document, read once per index generation.

    A search looks its hits' documents up by id and turns date or document filters into passage
    ids with arrays: nothing per search loops over the whole corpus in Python.
    """

    generation: int = -1
    by_id: dict[str, Document] = field(default_factory=dict)
    position: dict[str, int] = field(default_factory=dict)  # document id -> index into `dates`
    dates: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))  # published, else added_at
    passage_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # ascending
    passage_doc: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # index into `dates`

    def refresh(self, store: Store) -> None:
        generation = store.generation()  # read first: a write during the reads leaves it stale, not wrong
        if generation == self.generation:
            return
        documents = store.documents()
        self.by_id = {doc.id: doc for doc in documents}
        self.position = {doc.id: i for i, doc in enumerate(documents)}
        self.dates = np.array([_date(doc) for doc in documents], dtype=str)
        passage_ids, doc_ids = store.passage_documents()
        positions = np.fromiter((self.position.get(d, -1) for d in doc_ids), dtype=np.int64, count=len(doc_ids))
        known = positions >= 0  # a document added between the two reads waits for the next generation
        self.passage_ids, self.passage_doc = passage_ids[known], positions[known]
        self.generation = generation

    def chosen(self, documents: list[Document] | None, since: str | None) -> list[str] | None:
        """The ids of `documents` (None: all) still in the index and dated on or after `since`."""
        if documents is None:
            return None
        return [doc.id for doc in documents
                if doc.id in self.by_id and (not since or _date(self.by_id[doc.id]) >= since)]

    def any_dated(self, since: str | None) -> bool:
        """Whether any document is dated on or after `since` (None: whether there is any document)."""
        return bool(np.any(self.dates >= since)) if since else len(self.dates) > 0

    def passages_of(self, doc_ids: list[str] | None, since: str | None) -> np.ndarray | None:
        """Ids of the passages a filter allows (None when nothing is filtered)."""
        if doc_ids is None and not since:
            return None
        if doc_ids is None:
            allowed = self.dates >= since
        else:  # already filtered by date (`chosen`)
            allowed = np.zeros(len(self.dates), dtype=bool)
            allowed[[self.position[d] for d in doc_ids]] = True
        return self.passage_ids[allowed[self.passage_doc]]


def _date(doc: Document) -> str:
    """The date `since` compares: published, else the day it was added."""
    return doc.published or doc.added_at or ""


class Retriever:
    """Search over the store; `embed_query` runs the encoder (callers keep it off the event loop)."""

    def __init__(self, store: Store, encoder: Callable[[], Encoder] | None, model_id: str | None):
        self.store = store
        self._encoder = encoder
        self.model_id = model_id
        self.dense = DenseIndex()
        self.documents = DocumentTable()
        self._doc_freq: tuple[int, int, dict[str, int]] = (-1, 0, {})
        self._last_query: tuple[str | None, np.ndarray | None] = (None, None)

    def search(self, query: str, *, limit: int = 5, documents: list[Document] | None = None,
               since: str | None = None, dense: bool = True, each_language: int = 0) -> list[Hit]:
        """The `limit` best passages by fused rank. With `each_language`, that many of every
        language's best dense passages are kept among them: keyword matches in the question's
        language must not push out the passage in another language that answers it."""
        query = clean_query(query)
        table = self.documents
        table.refresh(self.store)
        chosen = table.chosen(documents, since)
        if not (chosen if chosen is not None else table.any_dated(since)):
            return []
        use_dense = dense and self._encoder is not None
        rankings = [self._bm25(query, chosen, keep_one=not use_dense, since=since)]
        if use_dense:
            rankings.extend(self._dense_by_language(query, table.passages_of(chosen, since)))
        fused = reciprocal_rank_fusion(rankings)
        kept = {pid for ranking in rankings[1:] for pid in ranking[:each_language]}
        passages = self.store.passages_by_id({pid for pid, _ in fused[:limit * 4]} | kept)
        hits = [Hit(passages[pid], table.by_id[passages[pid].doc_id], score) for pid, score in fused
                if pid in passages and passages[pid].doc_id in table.by_id]
        first = [hit for hit in hits if hit.passage.id in kept]
        rest = [hit for hit in hits if hit.passage.id not in kept][:max(limit - len(first), 0)]
        return sorted(first + rest, key=lambda hit: -hit.score)

    def query_vector(self, query: str) -> np.ndarray:
        """The query's embedding, kept for the last query: answering a question reuses the one its
        search computed."""
        if self._last_query[0] != query:
            self._last_query = (query, self._encoder().embed_queries([query])[0])
        return self._last_query[1]

    def _selective_terms(self, terms: list[str], keep_one: bool = True) -> tuple[list[str], list[str]]:
        """(words that select passages, words that only refine their ranking).

        Question words (_QUESTION_WORDS) select nothing unless the query has nothing else. On a large
        index neither do words found in more than COMMON_SHARE of passages: FTS5 scores every
        passage a term matches, so one very common word in an OR-query costs a scan of most of the
        index. There, both still count among the passages that the other words select (see
        `_bm25`); when every word is common, `keep_one` keeps the rarest as the selecting word,
        and without it (hybrid search, where the dense ranking carries such a query) none is.
        """
        content = [t for t in terms if t not in _QUESTION_WORDS] or terms
        generation = self.store.generation()
        if self._doc_freq[0] != generation:  # counts are cached until the index changes
            self._doc_freq = (generation, self.store.passage_count(), {})
        _, total, freq = self._doc_freq
        if len(terms) < 2 or total < SELECTIVE_FROM:
            return content, []
        for term in terms:
            if term not in freq:
                freq[term] = self.store.term_passage_count(term)
        selective = [t for t in content if 0 < freq[t] <= COMMON_SHARE * total]
        if not selective and keep_one:
            selective = [min(content, key=freq.__getitem__)]
        return selective, [t for t in terms if freq[t] > 0 and t not in selective]

    def _bm25(self, query: str, restrict: list[str] | None, keep_one: bool = True,
              since: str | None = None) -> list[int]:
        """Passage ids by BM25 over all the query's words, among passages with a selective word.

        Common words are scored by a second query, `(selective) AND (common)`, which FTS5 answers by
        seeking the common words' lists at the selected passages only (~2 ms where an OR over them
        takes ~50 ms at 100k passages). A passage's better score of the two is its exact BM25 over
        every word, so the merged top CANDIDATES are the exact ones.
        """
        selective, common = self._selective_terms(query_terms(self.store.tokenize(query)), keep_one)
        if not selective:
            return []
        scores = dict(self.store.bm25(selective, CANDIDATES, restrict, since))
        if common:
            refined = self.store.bm25(selective, CANDIDATES, restrict, since, also=common)
            for pid, score in refined:  # bm25(): lower is better
                scores[pid] = min(score, scores.get(pid, score))
        return sorted(scores, key=scores.__getitem__)[:CANDIDATES]

    def _dense_by_language(self, query: str, allowed: np.ndarray | None) -> list[list[int]]:
        """Dense rankings, one per document language.

        A small multilingual encoder still scores same-language text higher, so one mixed
        ranking buries the German passage that answers an English question; fusing a ranking
        per language gives each language's best passage a fair place.
        """
        self.dense.refresh(self.store, self.model_id)
        vector = self.query_vector(query)
        ranked = [pid for pid, _ in self.dense.top(vector, CANDIDATES * 4, allowed)]
        languages = self.store.passage_languages(ranked)
        by_language: dict[str, list[int]] = {}
        for pid in ranked:
            ranking = by_language.setdefault(languages.get(pid, ""), [])
            if len(ranking) < CANDIDATES:
                ranking.append(pid)
        return list(by_language.values())


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, pid in enumerate(ranking):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores.items(), key=lambda item: -item[1])
