"""Stories: new documents that report on the same event or topic, grouped for a digest.

Pure functions over document vectors (the mean of a document's passage vectors; e5 is multilingual, so
a German and an English article on one event lie close) and the names the documents share (people,
organisations, places: capitalised word sequences, found with question.py's name patterns); see Rule.
Documents are taken in the order given, ties break towards the earlier one, and groups are ordered by
their first document, so the same input always gives the same stories.
"""
from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from bot.core.question import _names
from summarizer.text import STOPWORDS, split_sentences

NAME_CHARS = 4000  # names are read from the title and the start of the text
_MONTHS = frozenset("""january february march april may june july august september october november december
januar februar märz juni juli oktober dezember""".split())  # capitalised, but no label


@dataclass(frozen=True)
class Rule:
    """When documents are one story.

    Raw cosines of e5 document vectors are all high (unrelated news articles 0.80-0.88, one story's
    0.88-0.94 in tests/data/news), so documents are
    compared by their vectors less the mean of the documents being grouped (what they all have in
    common), plus a bonus per shared full name, less a penalty when they share no name at all; groups
    are merged while their average pair score stays at `threshold` (average linkage: one close pair
    does not chain two stories together). A batch of documents all on one subject has no useful mean,
    so two documents are also one story when their raw vectors are close and they share several full
    names ("Sam Altman", "Satya Nadella"). Set by hand from tests/story_eval.py's figures: its own fit
    on half of the news corpus picks a looser rule (threshold 0.35, no penalty) that also puts two
    unrelated seeds together.
    """

    threshold: float = 0.40
    name_bonus: float = 0.04  # per shared full name, up to four
    no_name_penalty: float = 0.30
    close: float = 0.90  # raw cosine ...
    shared_names: int = 3  # ... and this many shared full names: one story

    def pair_scores(self, centered: np.ndarray, full_shared: np.ndarray, any_shared: np.ndarray) -> np.ndarray:
        return centered + self.name_bonus * np.minimum(full_shared, 4) - self.no_name_penalty * (any_shared == 0)


RULE = Rule()


@dataclass(frozen=True)
class StoryDoc:
    """What grouping needs of a document: its id, title, names and vector (None: not embedded yet)."""

    doc_id: str
    title: str
    names: frozenset[str]
    vector: np.ndarray | None


@dataclass(frozen=True)
class Story:
    """A group of documents on one event; a story of one is a document outside any group."""

    label: str
    doc_ids: tuple[str, ...]
    names: tuple[str, ...] = ()
    update_of: tuple[str, dt.datetime] | None = None  # (label, when posted) of the story this continues

    @property
    def grouped(self) -> bool:
        return len(self.doc_ids) > 1


def names(title: str, text: str, language: str = "en") -> frozenset[str]:
    """The names in a document's title and opening, lower-cased ("sam altman", "openai")."""
    german = language == "de"
    found = set()
    for sentence in [title, *split_sentences(text[:NAME_CHARS])]:
        for a, b in _names(sentence, german):
            phrase = re.sub(r"['’]s$", "", " ".join(sentence[a:b].split()).strip(".,;:'’\"")).lower()
            if len(phrase) > 2 and phrase not in STOPWORDS:
                found.add(phrase)
    return frozenset(found)


def document_vector(passage_vectors: np.ndarray) -> np.ndarray | None:
    """The unit-length mean of a document's passage vectors."""
    if not len(passage_vectors):
        return None
    mean = passage_vectors.astype(np.float32).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm else None


def _full_names(names: frozenset[str]) -> int:
    return sum(" " in name for name in names)


def group(docs: list[StoryDoc], rule: Rule = RULE) -> list[Story]:
    """The stories among `docs` (in their order): each document in exactly one story. Documents
    without a vector stay single."""
    embedded = [i for i, d in enumerate(docs) if d.vector is not None]
    clusters = _clusters([docs[i] for i in embedded], rule)
    root = {i: i for i in range(len(docs))}
    for cluster in clusters:
        for member in cluster:
            root[embedded[member]] = embedded[min(cluster)]
    members: dict[int, list[StoryDoc]] = {}
    for i, doc in enumerate(docs):
        members.setdefault(root[i], []).append(doc)
    return [_story(group) for _, group in sorted(members.items())]


def _shared_names(docs: list[StoryDoc]) -> tuple[np.ndarray, np.ndarray]:
    """For every pair of documents: how many full names (two words or more) and how many names they share."""
    index: dict[str, int] = {}
    rows, cols = [], []
    for row, doc in enumerate(docs):
        for name in doc.names:
            rows.append(row)
            cols.append(index.setdefault(name, len(index)))
    incidence = np.zeros((len(docs), len(index)), dtype=np.float32)
    incidence[rows, cols] = 1.0
    full_names = np.zeros(len(index), dtype=np.float32)
    for name, column in index.items():
        full_names[column] = " " in name
    return (incidence * full_names) @ incidence.T, incidence @ incidence.T


def _clusters(docs: list[StoryDoc], rule: Rule) -> list[list[int]]:
    """Average-linkage clusters (positions in `docs`), merged with the strict names rule's pairs."""
    n = len(docs)
    if n < 2:
        return [[i] for i in range(n)]
    raw = np.stack([d.vector for d in docs]).astype(np.float64)
    centered = raw - raw.mean(axis=0)
    centered /= np.maximum(np.linalg.norm(centered, axis=1, keepdims=True), 1e-9)
    full, shared = _shared_names(docs)
    score = rule.pair_scores(centered @ centered.T, full, shared)
    # average linkage: sums of pair scores between clusters, merged best first
    sums, sizes, alive = score.copy(), np.ones(n), np.ones(n, dtype=bool)
    parent = list(range(n))
    np.fill_diagonal(sums, -np.inf)
    while True:
        average = sums / np.outer(sizes, sizes)
        average[~alive, :] = -np.inf
        average[:, ~alive] = -np.inf
        a, b = np.unravel_index(int(np.argmax(average)), average.shape)
        if average[a, b] < rule.threshold:
            break
        a, b = min(a, b), max(a, b)
        sums[a, :] += sums[b, :]
        sums[:, a] += sums[:, b]
        sums[a, a] = -np.inf
        sizes[a] += sizes[b]
        alive[b] = False
        parent[b] = a
    strict = (raw @ raw.T >= rule.close) & (full >= rule.shared_names)

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in np.argwhere(np.triu(strict, k=1)):
        x, y = root(int(i)), root(int(j))
        parent[max(x, y)] = min(x, y)
    clusters: dict[int, list[int]] = {}
    for i in range(n):
        clusters.setdefault(root(i), []).append(i)
    return list(clusters.values())


def _story(members: list[StoryDoc]) -> Story:
    ids = tuple(d.doc_id for d in members)
    if len(members) == 1:
        return Story(members[0].title, ids, tuple(sorted(members[0].names)))
    counts = Counter(name for d in members for name in d.names)
    shared = sorted((n for n, c in counts.items() if c > 1), key=lambda n: (-counts[n], -len(n.split()), n))
    return Story(_label(shared, members), ids, tuple(shared))


def _label(shared: list[str], members: list[StoryDoc]) -> str:
    """The story's label: its two most shared names as the documents write them, else shared title words."""
    chosen: list[str] = []
    for name in shared:
        if name not in _MONTHS and not any(name in earlier or earlier in name for earlier in chosen):
            chosen.append(name)
    if chosen:
        return " · ".join(_as_written(name, members) for name in chosen[:2])
    words = Counter(w for d in members for w in {w.lower() for w in re.findall(r"\w{3,}", d.title)}
                    if w not in STOPWORDS)
    common = [w for w, c in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if c > 1][:3]
    return " ".join(common).capitalize() if common else members[0].title


def _as_written(name: str, members: list[StoryDoc]) -> str:
    for doc in members:
        match = re.search(re.escape(name), doc.title, re.I)
        if match:
            return match.group(0)
    return " ".join(w if w.isupper() else w[:1].upper() + w[1:] for w in name.split())


def update_of(story: Story, vector: np.ndarray | None, earlier: list[tuple[int, frozenset[str], np.ndarray | None]]
              ) -> int | None:
    """Which earlier posted story (its number, names, vector) `story` continues, if any: the closest one
    that is close by raw vector and shares several full names (the rule that needs no batch mean)."""
    best, best_similarity = None, -1.0
    for number, earlier_names, earlier_vector in earlier:
        if vector is None or earlier_vector is None:
            continue
        similarity = float(vector @ earlier_vector)
        close = similarity >= RULE.close and _full_names(frozenset(story.names) & earlier_names) >= RULE.shared_names
        if close and similarity > best_similarity:
            best, best_similarity = number, similarity
    return best


def story_vector(vectors: list[np.ndarray | None]) -> np.ndarray | None:
    known = [v for v in vectors if v is not None]
    return document_vector(np.stack(known)) if known else None
