"""The SQLite file itself: opening it, the one migration set, and atomic writes.

Each repository module registers its own tables' migrations on `migrations`; `open_db` applies them
all (store.py imports every repository module first, in migration order).
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

migrations = sqlite_utils.Migrations("digestbot")
ENGINE_VERSION = sqlite3.sqlite_version  # the database engine, for benchmark reports


class StoreError(Exception):
    """The database cannot be written (read-only file, full disk, corrupt file)."""


def written_at() -> str:
    """When a row is written, for the record (cache rows, handled events). Product time (when a
    document was added, what a digest covers) comes from the Service's injectable clock instead."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def open_db(path: str | Path) -> sqlite_utils.Database:
    """Open (creating if needed) the database in WAL mode and apply pending migrations."""
    try:
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        migrations.apply(db)
        # per-term passage counts, read by search to skip words that are in most passages
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.passages_vocab USING fts5vocab(main, passages_fts, row)")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    return db


class Database:
    """One connection and its write lock, shared by every repository of one Store."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db
        self._write_lock = threading.RLock()  # the loop and the model worker share one connection

    def path(self) -> str:
        """The database file ('' for an in-memory database)."""
        return self.db.execute("PRAGMA database_list").fetchone()[2]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write (BEGIN IMMEDIATE, so concurrent writers queue instead of deadlocking).

        sqlite-utils calls inside nest as savepoints; a failure rolls everything back.
        """
        with self._write_lock:
            yield from self._transaction()

    def _transaction(self) -> Iterator[None]:
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"database write failed: {exc}") from exc
        try:
            yield
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"database write failed: {exc}") from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the main file (before copying the file elsewhere)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.db.close()
