import json
import sqlite3

from bot.core.ingest import index_paths, split_passages
from bot.core.store import Store
from summarizer.text import word_count

from tests.conftest import SEEDS


def test_seeds_index_with_sidecar_metadata_and_offsets(store: Store):
    report = index_paths(store, [SEEDS])
    assert (report.added, report.updated, report.unchanged, report.removed) == (5, 0, 0, 0)
    docs = {d.path: d for d in store.documents()}
    meta = json.loads((SEEDS / "metadata.json").read_text())
    for name, info in meta.items():
        doc = docs[f"seeds/{name}"]
        assert doc.title == info["title"] and doc.language == info["language"]
        assert doc.url == info["url"] and doc.published == info["published"]
        text = store.document_text(doc.id)
        for passage in store.passages(doc.id):
            assert text[passage.start:passage.end] == passage.text  # offsets locate the quote
    german = docs["seeds/004_26890ec86dba1039.txt"]
    assert german.language == "de"


def test_passages_are_paragraph_aware_and_sized(store: Store):
    index_paths(store, [SEEDS])
    transcript = store.document_by_path("seeds/001_bbe9685bcaad8dc0.txt")
    sizes = [word_count(p.text) for p in store.passages(transcript.id)]
    assert len(sizes) > 40
    assert max(sizes) <= 250
    assert sum(80 <= s for s in sizes) / len(sizes) > 0.9


def test_reindex_is_idempotent_and_tracks_changes(tmp_path, store: Store):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Alpha\n\nThe alpha document talks about apples.\n")
    (folder / "b.txt").write_text("Bravo\n\nThe bravo document talks about bananas.\n")
    (folder / "c.html").write_text("<html><head><title>Charlie page</title></head><body><nav>menu menu</nav>"
                                   "<article><h1>Charlie</h1><p>" + "Cherries grow on trees in summer. " * 20 +
                                   "</p></article></body></html>")
    assert index_paths(store, [folder]).added == 3
    again = index_paths(store, [folder])
    assert (again.added, again.unchanged) == (0, 3)
    (folder / "a.md").write_text("# Alpha\n\nThe alpha document now talks about apricots.\n")
    (folder / "b.txt").unlink()
    changed = index_paths(store, [folder])
    assert (changed.updated, changed.removed, changed.unchanged) == (1, 1, 1)
    titles = sorted(d.title for d in store.documents())
    assert titles == ["Alpha", "Charlie"]
    charlie = next(d for d in store.documents() if d.title == "Charlie")
    assert "Cherries" in store.document_text(charlie.id) and "menu" not in store.document_text(charlie.id)
    assert store.db.execute("SELECT count(*) FROM passages_fts WHERE passages_fts MATCH 'bananas'").fetchone()[0] == 0


def test_database_uses_wal_and_migrations(store: Store, settings):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    applied = [r[0] for r in store.db.execute("SELECT name FROM _sqlite_migrations ORDER BY rowid")]
    assert applied[:2] == ["m001_documents", "m002_chat_state"]
    assert sqlite3.connect(settings.db_path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_split_passages_handles_run_on_text_without_breaks():
    text = "word " * 1000
    spans = split_passages(text)
    assert all(word_count(text[a:b]) <= 250 for a, b in spans)
    assert spans[0][0] == 0 and spans[-1][1] == len(text.rstrip())
    assert sum(word_count(text[a:b]) for a, b in spans) == 1000


def test_a_passage_never_ends_with_a_heading_or_an_introduction():
    """An FAQ's question and its answer, a line ending "execute the command" and the command, are one passage."""
    body = "This paragraph explains something at length, " * 16 + "and ends here."
    text = (f"1.1. What is it?\n\n{body}\n\n1.2. How do I list what is installed?\n\n"
            f"To list the packages, execute the command\n\n    dpkg --list\n\n{body}\n\n1.3. Last question?\n\n{body}")
    passages = [text[a:b] for a, b in split_passages(text)]
    assert [p.count("?") for p in passages] == [1, 1, 1]
    assert passages[1].startswith("1.2. How do I list") and "execute the command\n\n    dpkg --list" in passages[1]
    assert passages[2].startswith("1.3. Last question?")
    assert "".join(passages).replace("\n", "") == text.replace("\n", "")  # nothing lost


def test_folders_index_pdfs_and_skip_binary_junk(tmp_path, store: Store):
    from tests.local_web import make_pdf

    (tmp_path / "report.pdf").write_bytes(make_pdf(["Quarterly revenue grew by eleven percent."], "Q3 report"))
    (tmp_path / "junk.txt").write_bytes(b"\x00\x01\x02binary" * 50)
    report = index_paths(store, [tmp_path])
    assert report.added == 1 and len(report.errors) == 1 and "junk.txt" in report.errors[0]
    pdf = store.document_by_path(str((tmp_path / "report.pdf").resolve()))
    assert pdf.title == "Q3 report" and "eleven percent" in store.document_text(pdf.id)
    assert pdf.published == "2024-01-15"
