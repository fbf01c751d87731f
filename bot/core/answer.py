"""Question -> short answer whose claims carry [n] markers, citing only supporting passages, or abstain.

Answers are extractive: the sentences of the retrieved passages that best answer the question
(scored with the retrieval encoder, which is multilingual), quoted with their sources, so every
claim is a citation and nothing is invented.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bot.core.models import Document, Hit, Source
from summarizer.encoder import Encoder
from summarizer.text import readable, sentence_spans, words

# Cosine similarity (multilingual-e5) a sentence needs to count as answering; below it we abstain.
SUPPORT_THRESHOLD = 0.83
# Extra sentences are cited only when nearly as good as the best one.
MAX_SENTENCES = 2
RUNNER_UP_MARGIN = 0.03
# Small tie-breakers added to the cosine: the passage's retrieval rank and the question's words present.
RANK_WEIGHT = 0.01
OVERLAP_WEIGHT = 0.15
MIN_WORDS = 5
QUOTE_CHARS = 400
_STOP = set("""a an the of to in on for and or is are was were be been who what when where which why how
does do did has have had it its this that with by from as at about into than then there their they them
he she his her i you we our your my me""".split())


@dataclass(frozen=True)
class Answer:
    text: str  # markdown: the short answer in bold when one was found, then the cited sentences
    sources: list[Source]
    abstained: bool
    closest: list[Document]
    short: str | None = None  # the short answer phrase ("10 million tokens"), when found


@dataclass(frozen=True)
class _Candidate:
    hit: Hit
    start: int  # offsets inside the passage text
    end: int
    similarity: float  # cosine to the question: decides whether anything answers at all
    score: float  # similarity plus tie-breakers: decides which sentences answer best

    @property
    def sentence(self) -> str:
        return self.hit.passage.text[self.start:self.end]


def _candidates(hits: list[Hit], question: str, embed: Callable[[list[str]], np.ndarray],
                query: np.ndarray) -> list[_Candidate]:
    """Every prose sentence of the hits, with its predecessor (so "It has 128 experts." keeps its
    subject), scored: cosine to the question plus small rank/overlap boosts."""
    spans, contexts = [], []
    for rank, hit in enumerate(hits):
        sentences = sentence_spans(hit.passage.text)
        for i, (a, b) in enumerate(sentences):
            if len(words(readable(hit.passage.text[a:b]))) < MIN_WORDS or hit.passage.text[a] == "#":
                continue  # too short to answer anything, or a heading
            # the claim is the sentence with its predecessor: what was embedded is what gets quoted
            start = sentences[i - 1][0] if i else a
            spans.append((rank, hit, start, b))
            contexts.append(readable(hit.passage.text[start:b]))
    if not spans:
        return []
    scores = embed(contexts) @ query
    overlaps = _overlap_scores(question, [hit.passage.text[a:b] for _, hit, a, b in spans])
    candidates = []
    for (rank, hit, a, b), score, overlap in zip(spans, scores, overlaps):
        boost = RANK_WEIGHT * (1 - rank / len(hits)) + OVERLAP_WEIGHT * overlap
        candidates.append(_Candidate(hit, a, b, float(score), float(score) + boost))
    return sorted(candidates, key=lambda c: -c.score)


def _overlap_scores(question: str, sentences: list[str]) -> list[float]:
    """Share of the question's content words each sentence contains, weighted by rarity among
    the candidates (so "interim" counts for more than "CEO" when every sentence says CEO)."""
    wanted = {w.lower() for w in words(question) if w.lower() not in _STOP}
    present = [{w.lower() for w in words(s)} for s in sentences]
    if not wanted or not sentences:
        return [0.0] * len(sentences)
    idf = {w: math.log((1 + len(sentences)) / (1 + sum(w in p for p in present))) + 1 for w in wanted}
    total = sum(idf.values())
    return [sum(idf[w] for w in wanted & p) / total for p in present]


def _quote(candidate: _Candidate) -> str:
    """The passage text the answer came from, plus the following sentence when it fits in QUOTE_CHARS."""
    text = candidate.hit.passage.text
    end = candidate.end
    following = next(((a, b) for a, b in sentence_spans(text) if a >= end), None)
    if following and following[1] - candidate.start <= QUOTE_CHARS:
        end = following[1]
    return text[candidate.start:end]


def answer_question(question: str, hits: list[Hit], encoder: Encoder,
                    embed: Callable[[list[str]], np.ndarray] | None = None) -> Answer:
    """Pick the sentences that answer; cite each one's passage; abstain when none is close enough.

    `embed` embeds sentences (the service passes a cached one); default: the encoder directly.
    """
    query = encoder.embed_queries([question])[0]
    ranked = _candidates(hits, question, embed or encoder.embed_passages, query)
    closest = list({hit.document.id: hit.document for hit in hits}.values())[:3]
    if not ranked or max(c.similarity for c in ranked) < SUPPORT_THRESHOLD:
        return Answer("", [], True, closest)
    chosen = [ranked[0]]
    for candidate in ranked[1:]:
        if len(chosen) == MAX_SENTENCES or candidate.score < ranked[0].score - RUNNER_UP_MARGIN:
            break
        if not any(_same_claim(candidate, c) for c in chosen):
            chosen.append(candidate)
    sources: list[Source] = []
    parts = []
    for candidate in chosen:
        passage = candidate.hit.passage
        source = next((s for s in sources if s.passage_id == passage.id), None)
        if source is None:
            doc = candidate.hit.document
            source = Source(len(sources) + 1, doc.id, doc.title, doc.path, doc.url, _quote(candidate), passage.id)
            sources.append(source)
        parts.append(f"{readable(candidate.sentence)} [{source.n}]")
    return Answer(" ".join(parts), sources, False, closest)


def _same_claim(a: _Candidate, b: _Candidate) -> bool:
    overlap = set(words(a.sentence.lower())) & set(words(b.sentence.lower()))
    return len(overlap) / max(len(set(words(a.sentence.lower()))), 1) > 0.6
