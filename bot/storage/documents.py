"""Documents, their passages, the embedding and summary caches: schema, migration and SQL."""
from __future__ import annotations

import functools
import re
import sqlite3
import threading
from collections.abc import Iterable

import numpy as np
import sqlite_utils

from bot.core.values import Document, Passage
from bot.storage.database import Database, StoreError, migrations, written_at


@migrations()
def m001_documents(db: sqlite_utils.Database) -> None:
    db["documents"].create(
        {"id": str, "path": str, "url": str, "title": str, "language": str, "published": str,
         "added_at": str, "content_hash": str, "chars": int, "text": str},
        pk="id",
    )
    db["documents"].create_index(["path"], unique=True)
    db["documents"].create_index(["added_at"])
    db["passages"].create(
        {"id": int, "doc_id": str, "ordinal": int, "start": int, "end": int, "text": str, "hash": str},
        pk="id", foreign_keys=[("doc_id", "documents", "id")],
    )
    db["passages"].create_index(["doc_id", "ordinal"], unique=True)
    db["passages"].create_index(["hash"])
    db["passages"].enable_fts(["text"], fts_version="FTS5", create_triggers=True,
                              tokenize="unicode61 remove_diacritics 2")
    db["embeddings"].create({"hash": str, "model": str, "vector": bytes}, pk=("hash", "model"))
    db["summaries"].create(
        {"content_hash": str, "model": str, "language": str, "summary": str, "summary_language": str,
         "created_at": str},
        pk=("content_hash", "model", "language"),
    )
    db["meta"].create({"key": str, "value": str}, pk="key")


def _vector_rows(rows: list[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
    """(passage id, vector bytes) rows -> (ids, float16 matrix)."""
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float16)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    # a bytearray keeps the matrix writable, which torch wants for a zero-copy view
    matrix = np.frombuffer(bytearray(b"".join(r[1] for r in rows)), dtype=np.float16).reshape(len(rows), -1)
    return ids, matrix


_TOKENIZE_OPTION = re.compile(r"tokenize\s*=\s*'((?:[^']|'')*)'", re.IGNORECASE)


class Tokenizer:
    """The passages index's own FTS5 tokenizer, run by SQLite on a private in-memory table.

    Query words looked up in fts5vocab must be in the form the index stores them: case folded,
    diacritics removed as `remove_diacritics` says, split where the tokenizer splits. Python's
    `lower()` or `unicodedata` differ in places ("İ" lowers to "i" plus a combining dot; SQLite
    folds it to "i"), so SQLite tokenizes the text itself, with the index's exact options.
    """

    def __init__(self, options: str):
        self._conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        quoted = options.replace("'", "''")
        self._conn.execute(f"CREATE VIRTUAL TABLE probe USING fts5(text, tokenize='{quoted}')")
        self._conn.execute("CREATE VIRTUAL TABLE probe_tokens USING fts5vocab(probe, instance)")
        self._lock = threading.Lock()

    @classmethod
    def of_table(cls, db: sqlite_utils.Database, table: str) -> Tokenizer:
        """The tokenizer an existing FTS5 table was created with (FTS5's default when none was named)."""
        row = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", [table]).fetchone()
        found = _TOKENIZE_OPTION.search(row[0] if row else "")
        return cls(found.group(1).replace("''", "'") if found else "unicode61")

    def tokens(self, text: str) -> list[str]:
        with self._lock:
            self._conn.execute("INSERT INTO probe(rowid, text) VALUES (1, ?)", [text])
            try:
                return [row[0] for row in self._conn.execute("SELECT term FROM probe_tokens ORDER BY offset")]
            finally:
                self._conn.execute("DELETE FROM probe")

    def close(self) -> None:
        self._conn.close()


def _document(row: dict) -> Document:
    return Document(id=row["id"], path=row["path"], title=row["title"], language=row["language"],
                    content_hash=row["content_hash"], chars=row["chars"], url=row["url"],
                    published=row["published"], added_at=row["added_at"])


_DOC_COLUMNS = "id, path, url, title, language, published, added_at, content_hash, chars"


def fts_any(terms: list[str]) -> str:
    """A safe FTS5 expression matching any of the terms: each a quoted string, OR-ed.

    Quoting neutralises operators (AND/OR/NOT/NEAR), column filters, `*`, `-` and `^`; the terms
    come out of the index's tokenizer, so punctuation, emoji and control characters never reach MATCH.
    """
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


class DocumentRepository:
    """Documents, passages, vectors and summaries. The Store (store.py) is this repository, with the
    other aggregates' repositories hanging off it."""

    def __init__(self, database: Database):
        self.database = database
        self.db = database.db

    def close(self) -> None:
        if "_tokenizer" in self.__dict__:
            self._tokenizer.close()

    @functools.cached_property
    def _tokenizer(self) -> Tokenizer:
        return Tokenizer.of_table(self.db, "passages_fts")

    def tokenize(self, text: str) -> list[str]:
        """`text`'s words as the full-text index stores them (see Tokenizer)."""
        return self._tokenizer.tokens(text)

    # -- documents -----------------------------------------------------------------------------
    def documents(self) -> list[Document]:
        rows = self.db.execute(f"SELECT {_DOC_COLUMNS} FROM documents ORDER BY coalesce(published, added_at) DESC, title")
        return [_document(dict(zip(_DOC_COLUMNS.split(", "), row))) for row in rows.fetchall()]

    def document(self, doc_id: str) -> Document | None:
        return next((d for d in self._query_docs("id = ?", [doc_id])), None)

    def document_by_path(self, path: str) -> Document | None:
        return next((d for d in self._query_docs("path = ?", [path])), None)

    def document_by_hash(self, content_hash: str) -> Document | None:
        return next(iter(self._query_docs("content_hash = ? LIMIT 1", [content_hash])), None)

    def _query_docs(self, where: str, params: list) -> list[Document]:
        rows = self.db.execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE {where}", params).fetchall()
        return [_document(dict(zip(_DOC_COLUMNS.split(", "), row))) for row in rows]

    def document_at(self, address: str, other_than: str) -> Document | None:
        """A document whose path or URL is `address`, other than the one filed under path `other_than`."""
        return next(iter(self._query_docs("(path = ? OR url = ?) AND path != ? LIMIT 1",
                                          [address, address, other_than])), None)

    def document_text(self, doc_id: str) -> str:
        row = self.db.execute("SELECT text FROM documents WHERE id = ?", [doc_id]).fetchone()
        return row[0] if row else ""

    def find_documents(self, needle: str) -> list[Document]:
        """Documents whose id or path is `needle`, or whose title or path contains it (ASCII case-insensitive).

        `instr`, not LIKE: `%` and `_` are literal and a needle of any length is no "pattern too complex".
        A NUL matches nothing (SQLite would read the text only up to it).
        """
        if "\x00" in needle:
            return []
        lowered = needle.lower()
        return self._query_docs("id = ? OR path = ? OR instr(lower(title), ?) > 0 OR instr(lower(path), ?) > 0",
                                [needle, needle, lowered, lowered])

    def replace_document(self, doc: Document, text: str, passages: list[tuple[int, int, str, str]]) -> None:
        """Insert or replace a document and its passages (start, end, text, hash) atomically.

        A document replaces the one with its id or its path; an id held by another path is refused,
        so no document can be overwritten through a colliding id."""
        owner = self.db.execute("SELECT path FROM documents WHERE id = ?", [doc.id]).fetchone()
        if owner and owner[0] != doc.path:
            raise StoreError(f"document id {doc.id} already belongs to {owner[0]}; nothing was changed")
        with self.database.transaction():
            self.db.execute("DELETE FROM passages WHERE doc_id = ?", [doc.id])
            self.db.execute("DELETE FROM documents WHERE id = ? OR path = ?", [doc.id, doc.path])
            self.db["documents"].insert({
                "id": doc.id, "path": doc.path, "url": doc.url, "title": doc.title, "language": doc.language,
                "published": doc.published, "added_at": doc.added_at or written_at(),
                "content_hash": doc.content_hash, "chars": doc.chars, "text": text,
            })
            self.db["passages"].insert_all(
                {"doc_id": doc.id, "ordinal": i, "start": start, "end": end, "text": body, "hash": digest}
                for i, (start, end, body, digest) in enumerate(passages)
            )
            self._bump_generation()

    def delete_document(self, doc_id: str) -> None:
        with self.database.transaction():
            self.db.execute("DELETE FROM passages WHERE doc_id = ?", [doc_id])
            self.db.execute("DELETE FROM documents WHERE id = ?", [doc_id])
            self._bump_generation()

    def _bump_generation(self) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES('generation', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")

    def generation(self) -> int:
        """A counter bumped by every index change: in-memory caches compare it to stay fresh."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    # -- passages and search -------------------------------------------------------------------
    def passages(self, doc_id: str) -> list[Passage]:
        rows = self.db.execute(
            "SELECT id, doc_id, ordinal, start, end, text FROM passages WHERE doc_id = ? ORDER BY ordinal", [doc_id])
        return [Passage(*row) for row in rows.fetchall()]

    def passages_by_id(self, ids: Iterable[int]) -> dict[int, Passage]:
        ids = list(ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT id, doc_id, ordinal, start, end, text FROM passages WHERE id IN ({marks})", ids)
        return {row[0]: Passage(*row) for row in rows.fetchall()}

    def passages_before(self, passages: Iterable[Passage]) -> dict[int, Passage]:
        """{passage id: the passage before it in its document} (first passages have none)."""
        keys = [(p.id, p.doc_id, p.ordinal - 1) for p in passages if p.ordinal > 0]
        if not keys:
            return {}
        values = ",".join(["(?, ?, ?)"] * len(keys))
        rows = self.db.execute(
            f"WITH wanted(id, doc_id, ordinal) AS (VALUES {values}) "
            "SELECT wanted.id, p.id, p.doc_id, p.ordinal, p.start, p.end, p.text FROM wanted "
            "JOIN passages p ON p.doc_id = wanted.doc_id AND p.ordinal = wanted.ordinal",
            [value for key in keys for value in key])
        return {row[0]: Passage(*row[1:]) for row in rows.fetchall()}

    def passage_documents(self) -> tuple[np.ndarray, list[str]]:
        """(every passage id ascending, each one's document id)."""
        rows = self.db.execute("SELECT id, doc_id FROM passages ORDER BY id").fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)), [row[1] for row in rows]

    def passage_languages(self, ids: list[int]) -> dict[int, str]:
        """passage id -> its document's language."""
        found: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self.db.execute(
                "SELECT p.id, d.language FROM passages p JOIN documents d ON d.id = p.doc_id "
                f"WHERE p.id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            found.update(rows)
        return found

    def term_passage_count(self, term: str) -> int:
        """How many passages contain `term`, a token as `tokenize` returns it."""
        row = self.db.execute("SELECT doc FROM temp.passages_vocab WHERE term = ?", [term]).fetchone()
        return row[0] if row else 0

    def passage_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM passages").fetchone()[0]

    def bm25(self, terms: list[str], limit: int, doc_ids: list[str] | None = None, since: str | None = None,
             *, also: list[str] | None = None) -> list[tuple[int, float]]:
        """(passage id, BM25 score over every word given; lower is better) of the passages holding any
        of `terms` and, when `also` is given, any of `also` too; optionally only in `doc_ids` and in
        documents published (else added) on or after `since`. Words as `tokenize` returns them."""
        if not terms:
            return []
        match = fts_any(terms) if not also else f"({fts_any(terms)}) AND ({fts_any(also)})"
        params: list = [match]
        if doc_ids is None and not since:  # no join needed: 2-3x faster on large indexes
            sql = "SELECT rowid, bm25(passages_fts) AS rank FROM passages_fts WHERE passages_fts MATCH ?"
        else:
            sql = ("SELECT passages_fts.rowid, bm25(passages_fts) AS rank FROM passages_fts "
                   "JOIN passages p ON p.id = passages_fts.rowid WHERE passages_fts MATCH ?")
            if doc_ids is not None:
                sql += f" AND p.doc_id IN ({','.join('?' * len(doc_ids))})"
                params += doc_ids
            if since:
                sql += (" AND p.doc_id IN (SELECT id FROM documents "
                        "WHERE coalesce(nullif(published, ''), nullif(added_at, ''), '') >= ?)")
                params.append(since)
        sql += " ORDER BY rank LIMIT ?"
        return [(row[0], row[1]) for row in self.db.execute(sql, params + [limit]).fetchall()]

    # -- embedding cache -----------------------------------------------------------------------
    def missing_embeddings(self, model: str) -> list[tuple[str, str]]:
        """(hash, text) of passages with no cached vector for `model`, one per distinct text."""
        rows = self.db.execute(
            "SELECT p.hash, min(p.text) FROM passages p LEFT JOIN embeddings e ON e.hash = p.hash AND e.model = ? "
            "WHERE e.hash IS NULL GROUP BY p.hash", [model])
        return rows.fetchall()

    def save_embeddings(self, model: str, items: list[tuple[str, np.ndarray]]) -> None:
        with self.database.transaction():
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO embeddings(hash, model, vector) VALUES (?, ?, ?)",
                [(digest, model, np.asarray(vec, dtype=np.float16).tobytes()) for digest, vec in items])
            self._count_up(f"vectors:{model}")

    def _count_up(self, key: str) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES(?, '1') "
                        "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1", [key])

    def vectors_version(self, model: str) -> int:
        """A counter bumped whenever vectors for `model` are saved (by any process): the in-memory
        dense index compares it to pick up passages embedded after it was loaded."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [f"vectors:{model}"]).fetchone()
        return int(row[0]) if row else 0

    def missing_embedding_count(self, model: str) -> int:
        """How many distinct passage texts wait for a vector for `model` (what /status shows)."""
        return self.db.execute(
            "SELECT count(DISTINCT p.hash) FROM passages p WHERE NOT EXISTS "
            "(SELECT 1 FROM embeddings e WHERE e.hash = p.hash AND e.model = ?)", [model]).fetchone()[0]

    def embeddings(self, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), 500):
            chunk = hashes[start:start + 500]
            rows = self.db.execute(
                f"SELECT hash, vector FROM embeddings WHERE model = ? AND hash IN ({','.join('?' * len(chunk))})",
                [model, *chunk]).fetchall()
            found.update((h, np.frombuffer(v, dtype=np.float16)) for h, v in rows)
        return found

    def passage_vectors(self, model: str) -> tuple[np.ndarray, np.ndarray]:
        """(passage ids, float16 matrix) of every passage embedded with `model`."""
        rows = self.db.execute(
            "SELECT p.id, e.vector FROM passages p JOIN embeddings e ON e.hash = p.hash AND e.model = ? ORDER BY p.id",
            [model]).fetchall()
        return _vector_rows(rows)

    def passage_vectors_of(self, model: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(passage ids, float16 matrix) of those passages among `ids` that have a `model` vector now."""
        rows = []
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start:start + 500]]
            rows += self.db.execute(
                "SELECT p.id, e.vector FROM passages p JOIN embeddings e ON e.hash = p.hash AND e.model = ? "
                f"WHERE p.id IN ({','.join('?' * len(chunk))})", [model, *chunk]).fetchall()
        return _vector_rows(rows)

    def passage_id_array(self) -> np.ndarray:
        rows = self.db.execute("SELECT id FROM passages").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    # -- summary cache -------------------------------------------------------------------------
    def cached_summary(self, content_hash: str, model: str, language: str) -> tuple[str, str] | None:
        row = self.db.execute(
            "SELECT summary, summary_language FROM summaries WHERE content_hash = ? AND model = ? AND language = ?",
            [content_hash, model, language]).fetchone()
        return (row[0], row[1]) if row else None

    def save_summary(self, content_hash: str, model: str, language: str, summary: str, summary_language: str) -> None:
        with self.database.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO summaries VALUES (?, ?, ?, ?, ?, ?)",
                [content_hash, model, language, summary, summary_language, written_at()])

    # -- bulk loading (benchmarks) -------------------------------------------------------------
    def load_rows(self, documents: list[tuple], passages: list[tuple]) -> None:
        """Insert prepared rows in one transaction, skipping ingest: documents as (id, path, url, title,
        language, published, added_at, content_hash, chars, text), passages as (id or None, doc_id,
        ordinal, start, end, text, hash)."""
        with self.database.transaction():
            self.db.conn.executemany("INSERT INTO documents(id, path, url, title, language, published, added_at, "
                                     "content_hash, chars, text) VALUES (?,?,?,?,?,?,?,?,?,?)", documents)
            self.db.conn.executemany('INSERT INTO passages(id, doc_id, ordinal, start, "end", text, hash) '
                                     "VALUES (?,?,?,?,?,?,?)", passages)
            self._bump_generation()

    def passage_hashes(self) -> list[str]:
        """Every passage's text hash, in passage id order."""
        return [row[0] for row in self.db.execute("SELECT hash FROM passages ORDER BY id")]

    def delete_embeddings(self, model_suffix: str) -> None:
        """Drop the cached vectors of every model whose name ends with `model_suffix`."""
        with self.database.transaction():
            self.db.execute("DELETE FROM embeddings WHERE substr(model, -?) = ?", [len(model_suffix), model_suffix])

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.database.transaction():
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, value])
