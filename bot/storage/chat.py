"""Chat state: votes on replies, and the platform events already handled (delivered at most once)."""
from __future__ import annotations

import sqlite_utils

from bot.storage.database import Database, migrations, utcnow


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

    def record_feedback(self, platform: str, user_id: str, subject: str, vote: int) -> None:
        with self.database.transaction():
            self.database.db.execute("INSERT OR REPLACE INTO feedback VALUES (?, ?, ?, ?, ?)",
                                     [platform, user_id, subject, vote, utcnow()])

    def feedback_totals(self, subject: str) -> tuple[int, int]:
        row = self.database.db.execute(
            "SELECT coalesce(sum(vote > 0), 0), coalesce(sum(vote < 0), 0) FROM feedback WHERE subject = ?",
            [subject]).fetchone()
        return row[0], row[1]

    def first_delivery(self, key: str) -> bool:
        """True the first time `key` (a platform's event id) is seen, False for a redelivery."""
        with self.database.transaction():
            cursor = self.database.db.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?)", [key, utcnow()])
            return cursor.rowcount == 1
