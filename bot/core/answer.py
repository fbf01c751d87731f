"""Question -> short answer whose claims carry [n] markers, citing only supporting passages, or abstain.

The default is extractive: the sentences of the retrieved passages that best answer the question
(scored with the retrieval encoder, which is multilingual), quoted with their sources. A
configured generator may rephrase those same cited sentences; it never adds sources.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from bot.core.models import Document, Hit, Source
from summarizer.encoder import Encoder
from summarizer.text import sentence_spans, words

# Cosine similarity (multilingual-e5) a sentence needs to count as answering; below it we abstain.
SUPPORT_THRESHOLD = 0.83
# Extra sentences are cited only when nearly as good as the best one.
MAX_SENTENCES = 2
RUNNER_UP_MARGIN = 0.015
QUOTE_CHARS = 400
_STOP = set("""a an the of to in on for and or is are was were be been who what when where which why how
does do did has have had it its this that with by from as at about into than then there their they them
he she his her i you we our your my me""".split())


@dataclass(frozen=True)
class Answer:
    text: str
    sources: list[Source]
    abstained: bool
    closest: list[Document]


@dataclass(frozen=True)
class _Candidate:
    hit: Hit
    start: int  # offsets inside the passage text
    end: int
    score: float

    @property
    def sentence(self) -> str:
        return self.hit.passage.text[self.start:self.end]


def _candidates(hits: list[Hit], question: str, encoder: Encoder) -> list[_Candidate]:
    spans = [(hit, a, b) for hit in hits for a, b in sentence_spans(hit.passage.text)
             if len(words(hit.passage.text[a:b])) >= 4]
    if not spans:
        return []
    vectors = encoder.embed_passages([hit.passage.text[a:b] for hit, a, b in spans])
    query = encoder.embed_queries([question])[0]
    scores = vectors @ query + 0.01 * np.array([_overlap(question, h.passage.text[a:b]) for h, a, b in spans])
    return sorted((_Candidate(h, a, b, float(s)) for (h, a, b), s in zip(spans, scores)), key=lambda c: -c.score)


def _overlap(question: str, sentence: str) -> float:
    """Share of the question's content words that the sentence contains (a small tie-breaker)."""
    wanted = {w.lower() for w in words(question) if w.lower() not in _STOP}
    present = {w.lower() for w in words(sentence)}
    return len(wanted & present) / len(wanted) if wanted else 0.0


def _quote(candidate: _Candidate) -> str:
    """The answering sentence with its neighbours, trimmed to about QUOTE_CHARS at sentence ends."""
    text = candidate.hit.passage.text
    spans = sentence_spans(text)
    index = next(i for i, (a, b) in enumerate(spans) if a <= candidate.start < b or a == candidate.start)
    start, end = spans[index]
    for i in (index - 1, index + 1):
        if 0 <= i < len(spans) and max(end, spans[i][1]) - min(start, spans[i][0]) <= QUOTE_CHARS:
            start, end = min(start, spans[i][0]), max(end, spans[i][1])
    return text[start:end]


def answer_question(question: str, hits: list[Hit], encoder: Encoder) -> Answer:
    """Pick the sentences that answer; cite each one's passage; abstain when none is close enough."""
    ranked = _candidates(hits, question, encoder)
    closest = list({hit.document.id: hit.document for hit in hits}.values())[:3]
    if not ranked or ranked[0].score < SUPPORT_THRESHOLD:
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
            source = Source(len(sources) + 1, doc.id, doc.title, doc.link, doc.url, _quote(candidate), passage.id)
            sources.append(source)
        parts.append(f"{_tidy(candidate.sentence)} [{source.n}]")
    return Answer(" ".join(parts), sources, False, closest)


def _same_claim(a: _Candidate, b: _Candidate) -> bool:
    overlap = set(words(a.sentence.lower())) & set(words(b.sentence.lower()))
    return len(overlap) / max(len(set(words(a.sentence.lower()))), 1) > 0.6


def _tidy(sentence: str) -> str:
    return re.sub(r"\s+", " ", sentence).strip()
