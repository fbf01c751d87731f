"""Followed feeds, the entries each has seen and the documents each created: schema, migrations and SQL."""
from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from bot.storage.database import Database, migrations


@migrations()
def m004_feeds(db: sqlite_utils.Database) -> None:
    db["feeds"].create(
        {"id": int, "url": str, "title": str, "etag": str, "last_modified": str, "error_count": int,
         "last_error": str, "last_polled": str, "added_at": str},
        pk="id", not_null={"url", "error_count"}, defaults={"error_count": 0},
    )
    db["feeds"].create_index(["url"], unique=True)
    db["feed_entries"].create(
        {"feed_id": int, "identity": str, "doc_id": str, "seen_at": str},
        pk=("feed_id", "identity"), foreign_keys=[("feed_id", "feeds", "id")],
    )


@migrations()
def m005_feed_documents(db: sqlite_utils.Database) -> None:
    """The documents each feed created: the only ones it may update."""
    db["feed_documents"].create({"doc_id": str, "feed_id": int}, pk="doc_id",
                                foreign_keys=[("feed_id", "feeds", "id")])


@dataclass(frozen=True)
class Feed:
    id: int
    url: str
    title: str | None
    etag: str | None
    last_modified: str | None
    error_count: int
    last_error: str | None
    last_polled: str | None

    @property
    def name(self) -> str:
        return self.title or self.url


_FEED_COLUMNS = "id, url, title, etag, last_modified, error_count, last_error, last_polled"


class FeedRepository:
    def __init__(self, database: Database):
        self.database = database
        self.db = database.db

    def feeds(self) -> list[Feed]:
        return [Feed(*row) for row in self.db.execute(f"SELECT {_FEED_COLUMNS} FROM feeds ORDER BY id").fetchall()]

    def find(self, needle: str) -> Feed | None:
        """The feed with this number (as text) or URL."""
        row = self.db.execute(f"SELECT {_FEED_COLUMNS} FROM feeds WHERE url = ? OR CAST(id AS TEXT) = ?",
                              [needle, needle]).fetchone()
        return Feed(*row) if row else None

    def follows(self, url: str) -> bool:
        return self.db.execute("SELECT 1 FROM feeds WHERE url = ?", [url]).fetchone() is not None

    def add(self, url: str, title: str | None, now: str) -> int:
        """Follow `url`; returns the new feed's number."""
        with self.database.transaction():
            return self.db["feeds"].insert({"url": url, "title": title, "error_count": 0, "added_at": now}).last_pk

    def remove(self, feed_id: int) -> None:
        """Forget the feed and what it saw (the documents it added stay)."""
        with self.database.transaction():
            self.db.execute("DELETE FROM feed_entries WHERE feed_id = ?", [feed_id])
            self.db.execute("DELETE FROM feed_documents WHERE feed_id = ?", [feed_id])
            self.db.execute("DELETE FROM feeds WHERE id = ?", [feed_id])

    def entry_counts(self) -> dict[int, int]:
        """feed number -> how many of its entries became documents."""
        return dict(self.db.execute("SELECT feed_id, count(doc_id) FROM feed_entries GROUP BY feed_id").fetchall())

    def seen(self, feed_id: int) -> set[str]:
        """The identities of the entries the feed has already handled."""
        return {row[0] for row in self.db.execute("SELECT identity FROM feed_entries WHERE feed_id = ?", [feed_id])}

    def record_entry(self, feed_id: int, identity: str, doc_id: str | None, now: str) -> None:
        with self.database.transaction():
            self.db.execute("INSERT OR REPLACE INTO feed_entries VALUES (?, ?, ?, ?)", [feed_id, identity, doc_id, now])

    def owns(self, feed_id: int, doc_id: str) -> bool:
        """Whether the feed created document `doc_id` (and so may update it)."""
        row = self.db.execute("SELECT 1 FROM feed_documents WHERE doc_id = ? AND feed_id = ?", [doc_id, feed_id])
        return row.fetchone() is not None

    def claim(self, feed_id: int, doc_id: str) -> None:
        """Record a document the feed just created as the feed's own."""
        with self.database.transaction():
            self.db.execute("INSERT OR REPLACE INTO feed_documents VALUES (?, ?)", [doc_id, feed_id])

    def record_success(self, feed_id: int, now: str, *, title: str | None, etag: str | None,
                       last_modified: str | None) -> None:
        with self.database.transaction():
            self.db.execute(
                "UPDATE feeds SET title = ?, etag = ?, last_modified = ?, error_count = 0, last_error = NULL, "
                "last_polled = ? WHERE id = ?", [title, etag, last_modified, now, feed_id])

    def record_failure(self, feed_id: int, now: str, error: str) -> None:
        with self.database.transaction():
            self.db.execute("UPDATE feeds SET error_count = error_count + 1, last_error = ?, last_polled = ? "
                            "WHERE id = ?", [error, now, feed_id])
