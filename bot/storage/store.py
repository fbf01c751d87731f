"""The Store: the documents repository, with every other aggregate's repository hanging off it.

    store.documents(), store.passages(...), ...  documents, passages, vectors, summaries (documents.py)
    store.schedules                               digest schedules, runs, lease (schedules.py)
    store.feeds                                   followed feeds (feeds.py)
    store.chat                                    handled platform events (chat.py)

All of them share one Database (database.py): one SQLite file, one connection, one write lock.
"""
from __future__ import annotations

from pathlib import Path

import sqlite_utils

# the repository modules register their migrations on import, in this order
from bot.storage.documents import DocumentRepository
from bot.storage.chat import ChatRepository
from bot.storage.schedules import ScheduleRepository
from bot.storage.feeds import FeedRepository
from bot.storage.database import Database, open_db


class Store(DocumentRepository):
    def __init__(self, db: sqlite_utils.Database):
        """`db`: an open, migrated database (see `open`)."""
        database = Database(db)
        super().__init__(database)
        self.chat = ChatRepository(database)
        self.schedules = ScheduleRepository(database)
        self.feeds = FeedRepository(database)

    @classmethod
    def open(cls, path: str | Path, *, bulk_load: bool = False) -> "Store":
        """The database at `path`, created and migrated as needed. `bulk_load` (benchmarks building a
        throw-away corpus) trades durability for speed: no fsync, a 256 MiB page cache."""
        db = open_db(path)
        if bulk_load:
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA cache_size=-262144")
        return cls(db)

    def reopen(self) -> "Store":
        """A second connection to the same database file, for a thread that reads and writes on its
        own (WAL lets it run beside this one); an in-memory database has only this connection."""
        path = self.database.path()
        return Store.open(path) if path else self

    def checkpoint(self) -> None:
        """Make the database file complete on its own (before it is copied)."""
        self.database.checkpoint()

    def close(self) -> None:
        super().close()
        self.database.close()
