import pytest

from bot.core.values import UserError
from bot.core.retrieve import query_terms, reciprocal_rank_fusion
from bot.storage.documents import fts_any

HOSTILE = ['"', "'unbalanced", "foo*", "-bar", "NEAR(a b)", "a AND OR NOT", "text:ceo", "title:x",
           "🔥🚀 emoji", "\x00\x07\x1b[31mred", "^start", "(", ")", "{a b}:c", "a:b:c", "' OR 1=1 --"]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_never_reach_match_raw(seeded_service, query):
    match = fts_any(query_terms(seeded_service.store.tokenize(query)))
    assert all(term.startswith('"') and term.endswith('"') and term.count('"') == 2
               for term in match.split(" OR ") if term)
    hits = seeded_service.retriever.search(query, dense=False)  # raises nothing
    assert isinstance(hits, list)


def test_empty_and_huge_queries_get_clear_errors(seeded_service):
    for query in ["", "   ", "\x00\x01"]:
        with pytest.raises(UserError, match="Type something"):
            seeded_service.retriever.search(query)
    with pytest.raises(UserError, match="too long"):
        seeded_service.retriever.search("a" * 10_000)


def test_hybrid_finds_interim_ceo_passage(seeded_service):
    hits = seeded_service.retriever.search("Who became interim CEO of OpenAI?", limit=5)
    assert any("Emmett Shear" in h.passage.text for h in hits[:3])


def test_english_question_finds_german_passage(seeded_service):
    hits = seeded_service.retriever.search(
        "Which OpenAI co-founders will lead Microsoft's Advanced AI Research Team?", limit=5)
    assert any(h.document.language == "de" and "Advanced AI Research Team" in h.passage.text for h in hits)


def test_german_question_finds_english_passage(seeded_service):
    hits = seeded_service.retriever.search("Wer wurde Interims-CEO von OpenAI, nachdem Altman entlassen wurde?",
                                           limit=5)
    assert any(h.document.language == "en" and "interim" in h.passage.text.lower() for h in hits)


def test_filters_by_document_and_date(seeded_service):
    docs = seeded_service.resolve_documents("What Ilya Saw")
    hits = seeded_service.retriever.search("OpenAI", documents=docs, limit=10)
    assert hits and {h.document.id for h in hits} == {docs[0].id}
    dated = seeded_service.retriever.search("Ilya OpenAI", since="2025-01-01", limit=20)
    # "since" compares the published date, else the day a document was added (today for undated seeds)
    assert dated and all((h.document.published or h.document.added_at) >= "2025-01-01" for h in dated)
    assert not any(h.document.published == "2024-12-15" for h in dated)


def test_rrf_rewards_agreement():
    fused = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]]))
    assert fused[1] > fused[3] > fused[2] and 4 in fused


def test_large_index_skips_words_in_most_passages(store, monkeypatch):
    """BM25 on a big index leaves out near-universal words (they only cost time), keeping the rarest."""
    from bot.core import retrieve
    from bot.core.ingest import build_document
    from bot.core.retrieve import Retriever

    for i in range(40):
        doc, text, passages = build_document(f"common words here {'rareword' if i == 7 else 'plain'} number{i}",
                                             path=f"doc{i}.txt")
        store.replace_document(doc, text, passages)
    monkeypatch.setattr(retrieve, "SELECTIVE_FROM", 10)
    retriever = Retriever(store, None, None)
    assert retriever._selective_terms(["common", "rareword", "absent"]) == (["rareword"], ["common"])
    assert retriever._selective_terms(["common", "words"]) in ((["common"], ["words"]), (["words"], ["common"]))
    assert retriever._selective_terms(["common", "words"], keep_one=False) == ([], ["common", "words"])
    hits = retriever.search("common rareword", dense=False)
    assert hits[0].document.path == "doc7.txt"


def test_document_metadata_is_read_once_per_index_generation(store, monkeypatch):
    """Searches reuse the documents read for the current index generation; a change is seen at once."""
    from bot.core.ingest import build_document
    from bot.core.retrieve import Retriever

    def add(name: str, text: str, published: str) -> str:
        doc, clean, passages = build_document(text, path=name, published=published)
        store.replace_document(doc, clean, passages)
        return doc.id

    add("old.txt", "alpha beta", "2024-01-01")
    mid = add("mid.txt", "alpha gamma", "2025-06-01")
    reads = []
    read_all = store.documents
    monkeypatch.setattr(store, "documents", lambda: reads.append(1) or read_all())
    retriever = Retriever(store, None, None)

    def found(**filters) -> list[str]:
        return sorted(hit.document.path for hit in retriever.search("alpha", dense=False, **filters))

    for _ in range(3):
        assert found() == ["mid.txt", "old.txt"]
    assert found(since="2025-01-01") == ["mid.txt"]
    assert len(reads) == 1
    add("new.txt", "alpha delta", "2025-07-01")
    assert found(since="2025-01-01") == ["mid.txt", "new.txt"]
    store.delete_document(mid)
    assert found() == ["new.txt", "old.txt"]
    assert found(documents=[store.document_by_path("old.txt")], since="2025-01-01") == []
    assert len(reads) == 3


def test_common_words_still_rank_what_rare_words_select(store, monkeypatch):
    """On a large index, common words select nothing but keep their part of the BM25 score: the
    ranking equals a full OR-query's among the passages that contain a rare word."""
    from bot.core import retrieve
    from bot.core.ingest import build_document
    from bot.core.retrieve import Retriever

    texts = ["rareword alone here", "rareword with common twice common", "a longer rareword passage with common once",
             "rareword rareword"] + [f"{'common ' if i % 6 == 0 else ''}filler number{i}" for i in range(60)]
    for i, text in enumerate(texts):
        store.replace_document(*build_document(text, path=f"doc{i}.txt"))
    monkeypatch.setattr(retrieve, "SELECTIVE_FROM", 10)
    retriever = Retriever(store, None, None)
    assert retriever._selective_terms(["rareword", "common"]) == (["rareword"], ["common"])
    selected = {pid for pid, _ in store.bm25(["rareword"], 100)}
    full = [pid for pid, _ in store.bm25(["rareword", "common"], 100) if pid in selected]
    rare_only = [pid for pid, _ in store.bm25(["rareword"], 100)]
    assert full != rare_only  # the common word changes the order
    assert retriever._bm25("rareword common", None) == full
