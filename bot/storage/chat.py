"""Chat state: the platform events already handled, so a redelivered event is answered once.

(m002 also created a `feedback` table for votes on replies; votes were removed, the table is left
as it is in existing databases and no code reads it.)"""
from __future__ import annotations

import sqlite_utils

from bot.storage.database import Database, migrations, written_at


@migrations()
def m002_chat_state(db: sqlite_utils.Database) -> None:
    db["feedback"].create(
        {"platform": str, "user_id": str, "subject": str, "vote": int, "created_at": str},
        pk=("platform", "user_id", "subject"),
    )
    db["deliveries"].create({"key": str, "seen_at": str}, pk="key")


class ChatRepository:
    def __init__(self, database: Database):
        self.database = database

    def first_delivery(self, key: str) -> bool:
        """True the first time `key` (a platform's event id) is seen, False for a redelivery."""
        with self.database.transaction():
            cursor = self.database.db.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?)", [key, written_at()])
            return cursor.rowcount == 1
