"""Term statistics must see words exactly as the FTS5 tokenizer stores them (issue 16, item 1).

The common-word filter of `Retriever._selective_terms` looks each query word up in fts5vocab. The
index folds case and removes diacritics ("Méditerranéenne" is stored as "mediterraneenne"), and
Python's own `lower()` turns "İstanbul" into "i̇stanbul" (with a combining dot) where SQLite folds it
to "istanbul": any word looked up in another form than the stored one counts 0 and used to be
dropped from the query on a large index.
"""
from __future__ import annotations

import pytest
import sqlite_utils

from bot.core import retrieve
from bot.core.ingest import build_document
from bot.core.retrieve import Retriever
from bot.core.store import Tokenizer

# Each word appears in several spellings (case, accents, NFD) across the passages below.
WORDS = ["méditerranéenne", "Méditerranéenne", "años", "canción", "Straße", "Übergröße",
         "İstanbul", "ılık", "ILIK", "istanbul"]
PASSAGES = [
    "La mer Méditerranéenne est chaude en été.",
    "MÉDITERRANÉENNE, disait l'affiche; la cuisine mediterraneenne aussi.",
    "La côte me\u0301diterrane\u0301enne (écrite en NFD).",
    "Hace muchos años sonó la canción.",
    "Los AÑOS pasan y una cancion sin tilde también cuenta.",
    "Die Straße war voller Menschen in Übergröße.",
    "STRASSE ist keine Straße; UBERGROSSE schon eher.",
    "Kleider in ÜBERGRÖẞE und übergroße Schuhe.",
    "İstanbul'da hava ılık.",
    "ISTANBUL ve Istanbul; ILIK bir rüzgar.",
    "istanbul küçük harflerle yazıldı.",
    "Çay ılık kaldı. Ilik bir gün.",
]
FILLER = 60  # passages that only share the common word, so the index is "large" for the filter


@pytest.fixture
def indexed(store, monkeypatch):
    """The passages above plus filler, each its own document, with the filter active from 10 passages."""
    texts = [f"common {text}" for text in PASSAGES] + [f"common filler number{i}" for i in range(FILLER)]
    for n, text in enumerate(texts):
        doc, clean, parts = build_document(text, path=f"doc{n}.txt")
        store.replace_document(doc, clean, parts)
    monkeypatch.setattr(retrieve, "SELECTIVE_FROM", 10)
    return store


def matching_passages(store, word: str) -> set[int]:
    """What FTS5 MATCH itself finds for the word, quoted as search quotes it."""
    rows = store.db.execute("SELECT rowid FROM passages_fts WHERE passages_fts MATCH ?", [f'"{word}"'])
    return {row[0] for row in rows}


@pytest.mark.parametrize("word", WORDS)
def test_passage_count_equals_what_match_finds(indexed, word):
    tokens = indexed.tokenize(word)
    assert len(tokens) == 1, tokens
    expected = len(matching_passages(indexed, word))
    assert expected >= 2  # every word has several spellings in the passages
    assert indexed.term_passage_count(tokens[0]) == expected


@pytest.mark.parametrize("word", WORDS)
def test_large_index_keeps_accented_and_turkish_words(indexed, word):
    """On a large index a query word that is not common is kept, whatever its spelling."""
    hits = Retriever(indexed, None, None).search(f"{word} common number1", limit=50, dense=False)
    found = {hit.passage.id for hit in hits}
    assert matching_passages(indexed, word) <= found


def test_tokenize_follows_the_index_tokenizer(indexed):
    assert indexed.tokenize("Méditerranéenne AÑOS Übergröße İstanbul ILIK foo_bar") == [
        "mediterraneenne", "anos", "ubergroße", "istanbul", "ilik", "foo", "bar"]  # SQLite folds I to i, not ı
    assert indexed.tokenize("🔥 -- ***") == []


def test_tokenizer_options_are_read_from_the_table(tmp_path):
    """An index created with other options (accents kept) is tokenized with those options."""
    db = sqlite_utils.Database(tmp_path / "other.db")
    db["notes"].insert({"id": 1, "text": "Méditerranéenne"}, pk="id")
    db["notes"].enable_fts(["text"], fts_version="FTS5", tokenize="unicode61 remove_diacritics 0")
    tokenizer = Tokenizer.of_table(db, "notes_fts")
    assert tokenizer.tokens("Méditerranéenne años") == ["méditerranéenne", "años"]
    assert Tokenizer.of_table(db, "missing").tokens("Años") == ["anos"]  # FTS5's default: unicode61
