"""Key-point summaries from the real packaged encoders over the real seeds and the evaluation set."""
import asyncio
import time

import pytest

from bot.core.values import Actor, Request, Target
from summarizer import SUMMARY_METHOD, Models, Summary
from summarizer.extractive import KeyPoint, mentions, self_contained, starts_unresolved, title_topics
from tests.summary_eval import Row, evaluate, has_leading_filler, load_documents

ME = Actor("tester", "tester")
HERE = Target("console", "local", "test")
TRANSCRIPT = "seeds/001_bbe9685bcaad8dc0.txt"
HEADLINES = ["Llama 4", "Nova Act", "xAI buys X", "PaperBench"]


def summary_reply(service, document):
    return asyncio.run(service.handle(Request("summary", {"document": document}, ME, HERE)))


def test_title_topics_and_mentions():
    title = "Last Week in AI #206 - Llama 4, Nova Act, xAI buys X, PaperBench"
    assert title_topics(title) == ["Last Week in AI", *HEADLINES]
    assert mentions("Llama 4", "Meta released Lama 4 Scout.")  # a transcription slip
    assert mentions("PaperBench", "The paper is called Paper Bench.")
    assert mentions("xAI buys X", "X has been sold to Elon Musk's XAI.")
    assert not mentions("Nova Act", "A unique situation about the opening act.")  # "act" alone is not Nova Act
    assert not mentions("Llama 4", "The camel and the alpaca.")
    assert title_topics("Microsoft holt Sam Altman und Greg Brockman: was wird aus OpenAI?") == [
        "Microsoft holt Sam Altman", "Greg Brockman", "was wird aus OpenAI"]


def test_sentences_are_made_self_contained_or_rejected():
    assert self_contained("This paper is called Paper Bench.") == "The paper is called Paper Bench."
    assert self_contained("Diese Firma wächst schnell.") == "Die Firma wächst schnell."
    assert self_contained("Their first act is Nova Act.", "We are moving to Amazon, which is new.") == \
        "Amazon's first act is Nova Act."
    assert self_contained("Their first act is Nova Act.", "We compared Meta and Amazon.") is None  # which one?
    for dangling in ["They're not publishing it.", "This is a big deal.", "It was trained on 30T tokens.",
                     "And they said no.", "Er hat das abgelehnt."]:
        assert self_contained(dangling) is None and starts_unresolved(dangling)
    assert self_contained("Meta released three models.") == "Meta released three models."


def test_transcript_summary_names_its_headlines_and_spans_the_document(seeded_service):
    reply = summary_reply(seeded_service, "Last Week in AI")
    assert reply.ok
    points = reply.data["key_points"]
    shown = [reply.data["overview"], *(p["text"] for p in points)]
    assert sum(any(mentions(topic, s) for s in shown) for topic in HEADLINES) >= 3, shown
    text = seeded_service.store.document_text(seeded_service.store.document_by_path(TRANSCRIPT).id)
    positions = [text.find(p["source"]) for p in points]
    assert all(p >= 0 for p in positions)  # each key point keeps its exact source sentence
    assert {3 * p // len(text) for p in positions} == {0, 1, 2}, positions
    assert positions == sorted(positions) and 3 <= len(points) <= 5  # document order
    for sentence in shown:
        assert not has_leading_filler(sentence) and not starts_unresolved(sentence), sentence
        assert "\n" not in sentence
    assert reply.text.startswith(reply.data["overview"]) and reply.text.count("\n•") == len(points)


def test_summary_cache_stores_key_points_and_key_changes_with_method(seeded_service):
    models = seeded_service.models
    assert SUMMARY_METHOD in models.summarizer_id and "extractive-v2" not in models.summarizer_id
    doc = seeded_service.store.document_by_path("seeds/000_e8e752ce90d85e32.txt")
    first = summary_reply(seeded_service, doc.id)
    stored, language = seeded_service.store.cached_summary(doc.content_hash, models.summarizer_id, "English")
    cached = Summary.from_json(stored, language, models.summarizer_id)
    assert cached.overview == first.data["overview"] and language == "English"
    assert [{"text": p.text, "source": p.source} for p in cached.points] == first.data["key_points"]
    started = time.perf_counter()
    again = summary_reply(seeded_service, doc.id)
    assert again.data == first.data and time.perf_counter() - started < 0.05


def test_german_document_is_read_with_the_multilingual_encoder(seeded_service):
    models = seeded_service.models
    assert models.reading_encoder("de") is models.encoder and models.reading_encoder("en") is models.summary_encoder
    german = seeded_service.store.document_by_path("seeds/004_26890ec86dba1039.txt")
    reply = summary_reply(seeded_service, german.id)
    text = seeded_service.store.document_text(german.id)
    assert reply.ok and reply.data["language"] == "German" and len(reply.data["key_points"]) >= 2
    assert all(p["source"] in text for p in reply.data["key_points"])
    assert any(mentions(t, reply.data["overview"]) for t in ["OpenAI", "Microsoft", "Altman"])


def test_non_json_cache_rows_read_as_an_overview():
    summary = Summary.from_json("Plain text from elsewhere.", "English", "m")
    assert summary.overview == "Plain text from elsewhere." and summary.points == ()
    shaped = Summary("Overview.", (KeyPoint("Point.", "So point."),), "English", "m")
    assert Summary.from_json(shaped.to_json(), "English", "m") == shaped
    assert shaped.text == "Overview.\n• Point."


@pytest.fixture(scope="module")
def evaluation(models: Models):
    docs = [d for d in load_documents() if d.kind != "seed"]
    return docs, evaluate(models, docs, with_before=False)[1]


def test_evaluation_set_floors(evaluation):
    """python -m tests.summary_eval prints the full table; these are its floors."""
    docs, after = evaluation
    assert len(docs) >= 50 and {d.kind for d in docs} >= {"transcript", "essay", "faq", "news", "encyclopedia"}
    assert {d.language for d in docs} >= {"en", "de"}
    figures = Row("all", list(after.values())).figures()
    assert figures["pronoun"] < 0.05 and figures["filler"] < 0.05, figures
    assert figures["topics"] >= 0.7 and figures["thirds"] >= 0.8, figures
    assert all(outcome.points for outcome in after.values())
