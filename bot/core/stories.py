"""Stories: new documents that report on the same event or topic, grouped for a digest.

Pure functions over document vectors (the mean of a document's passage vectors; e5 is multilingual, so
a German and an English article on one event lie close) and the names the documents share (people,
organisations, places: capitalised word sequences, found with question.py's name patterns). Two
documents are linked when their vectors are very close, or close and they share names; a story is a
connected group of linked documents. Documents are taken in the order given and groups are ordered by
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

# Cosines of e5 document vectors. Documents on one broad subject (AI, say) already lie at 0.86-0.98, so
# the vector alone only links near-duplicates; otherwise a link needs SHARED_NAMES shared names of two or
# more words ("Sam Altman", "Satya Nadella"). Set on the seeds only (tests/test_stories.py): no labelled
# news corpus was available to fit them on.
SAME_STORY = 0.99  # this close: one story whatever the names
CLOSE = 0.90  # this close and sharing SHARED_NAMES full names: one story
SHARED_NAMES = 3
NAME_CHARS = 4000  # names are read from the title and the start of the text


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


def _similarities(docs: list[StoryDoc]) -> np.ndarray:
    """Cosine of every pair of document vectors; -1 where either has none."""
    known = [d.vector for d in docs if d.vector is not None]
    if not known:
        return np.full((len(docs), len(docs)), -1.0, dtype=np.float32)
    matrix = np.stack([d.vector if d.vector is not None else np.zeros(len(known[0]), np.float32) for d in docs])
    similarity = matrix.astype(np.float32) @ matrix.astype(np.float32).T
    missing = np.array([d.vector is None for d in docs])
    similarity[missing, :] = -1.0
    similarity[:, missing] = -1.0
    return similarity


def _full_names(names: frozenset[str]) -> int:
    return sum(" " in name for name in names)


def linked(similarity: float, shared: int) -> bool:
    return similarity >= SAME_STORY or (similarity >= CLOSE and shared >= SHARED_NAMES)


def group(docs: list[StoryDoc]) -> list[Story]:
    """The stories among `docs` (in their order): each document in exactly one story."""
    similarity = _similarities(docs)
    parent = list(range(len(docs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    candidates = np.argwhere(np.triu(similarity >= CLOSE, k=1))
    for i, j in candidates:
        if linked(float(similarity[i, j]), _full_names(docs[i].names & docs[j].names)):
            a, b = root(int(i)), root(int(j))
            parent[max(a, b)] = min(a, b)
    members: dict[int, list[StoryDoc]] = {}
    for i, doc in enumerate(docs):
        members.setdefault(root(i), []).append(doc)
    return [_story(group) for _, group in sorted(members.items())]


def _story(members: list[StoryDoc]) -> Story:
    ids = tuple(d.doc_id for d in members)
    if len(members) == 1:
        return Story(members[0].title, ids, tuple(sorted(members[0].names)))
    counts = Counter(name for d in members for name in d.names)
    shared = sorted((n for n, c in counts.items() if c > 1), key=lambda n: (-counts[n], -len(n.split()), n))
    return Story(_label(shared, members), ids, tuple(shared))


def _label(shared: list[str], members: list[StoryDoc]) -> str:
    """The story's label: its two most shared names as the documents write them, else shared title words."""
    if shared:
        return " · ".join(_as_written(name, members) for name in shared[:2])
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
    it would have been grouped with (the same rule as between two documents)."""
    best, best_similarity = None, -1.0
    for number, earlier_names, earlier_vector in earlier:
        if vector is None or earlier_vector is None:
            continue
        similarity = float(vector @ earlier_vector)
        if linked(similarity, _full_names(frozenset(story.names) & earlier_names)) and similarity > best_similarity:
            best, best_similarity = number, similarity
    return best


def story_vector(vectors: list[np.ndarray | None]) -> np.ndarray | None:
    known = [v for v in vectors if v is not None]
    return document_vector(np.stack(known)) if known else None
