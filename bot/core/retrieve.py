"""Hybrid passage search: safe FTS5 BM25 plus dense vectors, fused with reciprocal-rank fusion."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bot.core.models import Document, Hit, UserError
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
# Question words that only add noise to an OR-query (kept when a query has nothing else).
_STOPWORDS = frozenset("""a an and are as at be been but by can did do does for from had has have how i if in
into is it its me my of on or our so than that the their them then there these they this to was we were what
when where which who whom why will with would you your der die das und ist ein eine einer wer wie was wo warum
welche welcher von zu mit den dem des im nicht auch sich hat haben wurde""".split())


def query_terms(tokens: list[str]) -> list[str]:
    """The distinct tokens of a query (`Store.tokenize`), question words dropped unless nothing else is left."""
    terms = list(dict.fromkeys(tokens))
    return ([t for t in terms if t not in _STOPWORDS] or terms)[:MAX_TERMS]


def fts_query(terms: list[str]) -> str:
    """A safe FTS5 expression matching any of the terms: each a quoted string, OR-ed.

    Quoting neutralises operators (AND/OR/NOT/NEAR), column filters, `*`, `-` and `^`; the terms
    come out of the index's tokenizer, so punctuation, emoji and control characters never reach MATCH.
    """
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def clean_query(text: str) -> str:
    """Validate a query: one short line of printable text, or a UserError saying what is wrong."""
    text = " ".join(clean_control(text or "").split())
    if not text:
        raise UserError("Type something to search for.")
    if len(text) > MAX_QUERY_CHARS:
        raise UserError(f"Query too long: {len(text):,} characters (at most {MAX_QUERY_CHARS:,}).")
    return text


def parse_since(value: str | None) -> str | None:
    """`YYYY-MM-DD` (or a full ISO timestamp) -> ISO string to compare with document dates."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10]).isoformat()
    except ValueError:
        raise UserError(f"Bad date {value!r}: use YYYY-MM-DD.") from None


@dataclass
class DenseIndex:
    """Passage vectors held in memory, reloaded when the store's generation changes."""

    generation: int = -1
    ids: np.ndarray | None = None
    matrix: np.ndarray | None = None

    def refresh(self, store: Store, model: str) -> None:
        generation = store.generation()
        if generation != self.generation:
            self.ids, self.matrix = store.passage_vectors(model)
            self.generation = generation

    def top(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        if self.matrix is None or not len(self.matrix):
            return []
        # torch multiplies the float16 matrix in place: no float32 copy of a million vectors per query
        scores = torch.mv(torch.from_numpy(self.matrix), torch.from_numpy(query.astype(np.float16))).float().numpy()
        if allowed is not None:
            scores = np.where(np.isin(self.ids, allowed), scores, -np.inf)
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        return [(int(self.ids[i]), float(scores[i])) for i in best if np.isfinite(scores[i])]


class Retriever:
    """Search over the store; `embed_query` runs the encoder (callers keep it off the event loop)."""

    def __init__(self, store: Store, encoder: Callable[[], Encoder] | None, model_id: str | None):
        self.store = store
        self._encoder = encoder
        self.model_id = model_id
        self.dense = DenseIndex()
        self._documents: tuple[int, list[Document]] | None = None
        self._doc_freq: tuple[int, int, dict[str, int]] = (-1, 0, {})
        self._last_query: tuple[str | None, np.ndarray | None] = (None, None)

    def search(self, query: str, *, limit: int = 5, documents: list[Document] | None = None,
               since: str | None = None, dense: bool = True, each_language: int = 0) -> list[Hit]:
        """The `limit` best passages by fused rank. With `each_language`, that many of every
        language's best dense passages are kept among them: keyword matches in the question's
        language must not push out the passage in another language that answers it."""
        query = clean_query(query)
        docs = {d.id: d for d in (documents if documents is not None else self.all_documents())}
        if since:
            docs = {k: d for k, d in docs.items() if (d.published or d.added_at or "") >= since}
        if not docs:
            return []
        restrict = list(docs) if (documents is not None or since) else None
        use_dense = dense and self._encoder is not None
        rankings = [self._bm25(query, restrict, keep_one=not use_dense)]
        if use_dense:
            rankings.extend(self._dense_by_language(query, restrict))
        fused = reciprocal_rank_fusion(rankings)
        kept = {pid for ranking in rankings[1:] for pid in ranking[:each_language]}
        passages = self.store.passages_by_id({pid for pid, _ in fused[:limit * 4]} | kept)
        hits = [Hit(passages[pid], docs[passages[pid].doc_id], score) for pid, score in fused
                if pid in passages and passages[pid].doc_id in docs]
        first = [hit for hit in hits if hit.passage.id in kept]
        rest = [hit for hit in hits if hit.passage.id not in kept][:max(limit - len(first), 0)]
        return sorted(first + rest, key=lambda hit: -hit.score)

    def query_vector(self, query: str) -> np.ndarray:
        """The query's embedding, kept for the last query: answering a question reuses the one its
        search computed."""
        if self._last_query[0] != query:
            self._last_query = (query, self._encoder().embed_queries([query])[0])
        return self._last_query[1]

    def all_documents(self) -> list[Document]:
        """Every document, re-read only when the index changed (a full read costs ~0.3 s at 1M passages)."""
        generation = self.store.generation()
        if self._documents is None or self._documents[0] != generation:
            self._documents = (generation, self.store.documents())
        return self._documents[1]

    def _selective_terms(self, terms: list[str], keep_one: bool = True) -> list[str]:
        """On a large index, drop words found in more than COMMON_SHARE of passages.

        FTS5 scores every passage a term matches, so one very common word costs a scan of most of
        the index while adding almost nothing to BM25 (its IDF is near zero). With `keep_one` the
        rarest word is kept even then; without it (hybrid search, where the dense ranking carries
        such a query) nothing is.
        """
        if len(terms) < 2:
            return terms
        generation = self.store.generation()
        if self._doc_freq[0] != generation:  # counts are cached until the index changes
            self._doc_freq = (generation, self.store.passage_count(), {})
        _, total, freq = self._doc_freq
        if total < SELECTIVE_FROM:
            return terms
        for term in terms:
            if term not in freq:
                freq[term] = self.store.term_passage_count(term)
        kept = [t for t in terms if 0 < freq[t] <= COMMON_SHARE * total]
        return kept or ([min(terms, key=freq.__getitem__)] if keep_one else [])

    def _bm25(self, query: str, restrict: list[str] | None, keep_one: bool = True) -> list[int]:
        match = fts_query(self._selective_terms(query_terms(self.store.tokenize(query)), keep_one))
        if not match:
            return []
        return [pid for pid, _ in self.store.bm25(match, CANDIDATES, restrict)]

    def _dense_by_language(self, query: str, restrict: list[str] | None) -> list[list[int]]:
        """Dense rankings, one per document language.

        A small multilingual encoder still scores same-language text higher, so one mixed
        ranking buries the German passage that answers an English question; fusing a ranking
        per language gives each language's best passage a fair place.
        """
        self.dense.refresh(self.store, self.model_id)
        vector = self.query_vector(query)
        allowed = None
        if restrict is not None:
            allowed = np.array(self.store.passage_ids(restrict), dtype=np.int64)
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
