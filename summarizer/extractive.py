"""Extractive summaries: central, non-redundant sentences chosen with a sentence encoder.

Map: in each window of passages keep its most central sentences. Reduce: from those candidates
pick, by maximal marginal relevance against the whole document's centroid, the few that cover it
best. The whole document is read, however long; output keeps document order.
"""
from __future__ import annotations

import re

import numpy as np

from summarizer.encoder import Encoder
from summarizer.text import readable, split_sentences, word_count

WINDOW_PASSAGES = 4
PER_WINDOW = 3
MMR_LAMBDA = 0.7
_URLISH = re.compile(r"https?://|www\.|\]\(|\[\d+\]")


def is_summary_sentence(sentence: str) -> bool:
    """A readable prose sentence: not a heading, link line, lyric fragment or run-on."""
    words = word_count(sentence)
    letters = sum(ch.isalpha() for ch in sentence)
    return (8 <= words <= 60 and letters / max(len(sentence), 1) > 0.6 and not _URLISH.search(sentence)
            and sentence.rstrip()[-1:] in ".!?。！？\"'”’")


def candidate_sentences(passages: list[str]) -> list[list[str]]:
    """Summary-worthy sentences per passage window (windows of WINDOW_PASSAGES passages)."""
    windows = []
    for start in range(0, len(passages), WINDOW_PASSAGES):
        sentences = [readable(s) for p in passages[start:start + WINDOW_PASSAGES] for s in split_sentences(p)]
        windows.append([s for s in sentences if is_summary_sentence(s)])
    return windows


def mmr(vectors: np.ndarray, relevance: np.ndarray, count: int, lam: float = MMR_LAMBDA) -> list[int]:
    """Indices chosen greedily for relevance minus redundancy with what is already chosen."""
    chosen: list[int] = []
    while len(chosen) < min(count, len(vectors)):
        if chosen:
            redundancy = (vectors @ vectors[chosen].T).max(axis=1)
        else:
            redundancy = np.zeros(len(vectors))
        scores = lam * relevance - (1 - lam) * redundancy
        scores[chosen] = -np.inf
        chosen.append(int(np.argmax(scores)))
    return chosen


def extractive_summary(encoder: Encoder, passages: list[str], sentences: int = 4) -> list[str]:
    """The `sentences` most central, mutually distinct sentences of the document, in document order."""
    windows = candidate_sentences(passages)
    candidates: list[str] = []
    vectors: list[np.ndarray] = []
    for window in windows:
        if not window:
            continue
        embedded = encoder.embed_passages(window)
        centrality = embedded @ _unit(embedded.mean(axis=0))
        for i in sorted(np.argsort(-centrality)[:PER_WINDOW]):  # keep document order
            candidates.append(window[i])
            vectors.append(embedded[i])
    if not candidates:
        fallback = [s for p in passages for s in split_sentences(p) if word_count(s) >= 4]
        return fallback[:sentences]
    matrix = np.stack(vectors)
    relevance = matrix @ _unit(matrix.mean(axis=0))
    picked = sorted(mmr(matrix, relevance, sentences))
    return [candidates[i] for i in picked]


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / (np.linalg.norm(vector) or 1.0)
