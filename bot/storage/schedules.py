"""Digest schedules, runs, posted documents and the runner's lease: schema, migration and SQL.

- `digest_schedules`: at most one per channel (target).
- `digest_runs`: one row per run, keyed as digest_rules.run_key says (or one per `digest now`).
- `digest_posted`: every (channel, document) ever posted.
- `leases`: named leases with a holder and an expiry.
- `digest_stories`: the stories (label, documents, names) each posted run showed, for follow-ups.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import sqlite_utils

from bot.core.digest_rules import COVERED, DAY_NAMES, DigestFilter, FAILED, PENDING, POSTED, Period, Run, Schedule, iso, parse_iso
from bot.core.values import Target
from bot.storage.database import Database, migrations


@migrations()
def m003_digests(db: sqlite_utils.Database) -> None:
    db["digest_schedules"].create(
        {"id": int, "platform": str, "workspace": str, "channel": str, "at_time": str, "timezone": str,
         "days": str, "paused": int, "notify_empty": int, "created_by": str, "created_at": str,
         "active_since": str},
        pk="id",
    )
    db["digest_schedules"].create_index(["platform", "workspace", "channel"], unique=True)
    db["digest_runs"].create(
        {"key": str, "schedule_id": int, "target": str, "platform": str, "workspace": str, "channel": str,
         "period_start": str, "period_end": str, "fires": int, "status": str, "doc_ids": str,
         "message_ref": str, "error": str, "attempts": int, "retry_at": str, "posted_at": str,
         "created_at": str, "updated_at": str},
        pk="key",
    )
    db["digest_runs"].create_index(["schedule_id", "status", "period_end"])
    db["digest_runs"].create_index(["target", "updated_at"])
    db["digest_runs"].create_index(["status"])
    db["digest_posted"].create({"target": str, "doc_id": str, "run_key": str, "posted_at": str},
                               pk=("target", "doc_id"))
    db["leases"].create({"name": str, "holder": str, "expires_at": str}, pk="name")


@migrations()
def m006_digest_stories(db: sqlite_utils.Database) -> None:
    db["digest_stories"].create({"id": int, "run_key": str, "target": str, "label": str, "doc_ids": str,
                                 "names": str, "posted_at": str}, pk="id")
    db["digest_stories"].create_index(["target", "posted_at"])


@migrations()
def m007_digest_filters(db: sqlite_utils.Database) -> None:
    db["digest_schedules"].add_column("filter", str)


@dataclass(frozen=True)
class PostedStory:
    run_key: str
    label: str
    doc_ids: list[str]
    names: frozenset[str]
    posted_at: dt.datetime


def _schedule(row: dict) -> Schedule:
    return Schedule(
        id=row["id"], target=Target(row["platform"], row["workspace"], row["channel"]),
        at=dt.time.fromisoformat(row["at_time"]), timezone=row["timezone"],
        days=frozenset(DAY_NAMES.index(d) for d in row["days"].split(",")), paused=bool(row["paused"]),
        notify_empty=bool(row["notify_empty"]), created_by=row["created_by"] or "",
        active_since=parse_iso(row["active_since"]),
        filter=DigestFilter.from_json(json.loads(row["filter"])) if row.get("filter") else None,
    )


def _run(row: dict) -> Run:
    return Run(row["key"], row["schedule_id"], Target(row["platform"], row["workspace"], row["channel"]),
               parse_iso(row["period_end"]), row["fires"] or 0, row["status"], json.loads(row["doc_ids"] or "[]"),
               row["message_ref"], row["error"], parse_iso(row["retry_at"]), parse_iso(row["posted_at"]),
               parse_iso(row["updated_at"]), row["attempts"] or 0)


class ScheduleRepository:
    def __init__(self, database: Database):
        self.database = database
        self.db = database.db

    # -- schedules -----------------------------------------------------------------------------
    def schedules(self, schedule_id: int | None = None) -> list[Schedule]:
        """Every schedule (or the one with `schedule_id`), oldest first."""
        where, params = ("WHERE id = ?", [schedule_id]) if schedule_id is not None else ("", [])
        return [_schedule(row) for row in self.db.query(f"SELECT * FROM digest_schedules {where} ORDER BY id", params)]

    def schedule_for(self, target: Target) -> Schedule | None:
        rows = list(self.db.query(
            "SELECT * FROM digest_schedules WHERE platform = ? AND workspace = ? AND channel = ?",
            [target.platform, target.workspace, target.channel]))
        return _schedule(rows[0]) if rows else None

    def save_schedule(self, target: Target, at: dt.time, timezone: str, days: frozenset[int],
                      notify_empty: bool, created_by: str, now: dt.datetime) -> Schedule:
        """Create or replace the channel's schedule, active from `now`."""
        with self.database.transaction():
            self.db.execute(
                "INSERT INTO digest_schedules(platform, workspace, channel, at_time, timezone, days, paused, "
                "notify_empty, created_by, created_at, active_since) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?) "
                "ON CONFLICT(platform, workspace, channel) DO UPDATE SET at_time = excluded.at_time, "
                "timezone = excluded.timezone, days = excluded.days, paused = 0, "
                "notify_empty = excluded.notify_empty, created_by = excluded.created_by, "
                "created_at = excluded.created_at, active_since = excluded.active_since",
                [target.platform, target.workspace, target.channel, f"{at:%H:%M}", timezone,
                 ",".join(DAY_NAMES[d] for d in sorted(days)), int(notify_empty), created_by, iso(now), iso(now)])
        return self.schedule_for(target)

    def set_filter(self, schedule_id: int, digest_filter: DigestFilter | None) -> None:
        with self.database.transaction():
            self.db.execute("UPDATE digest_schedules SET filter = ? WHERE id = ?",
                            [digest_filter and json.dumps(digest_filter.to_json()), schedule_id])

    def set_paused(self, schedule_id: int, paused: bool, now: dt.datetime) -> None:
        """Pause or resume; either way the schedule counts as active from `now`."""
        with self.database.transaction():
            self.db.execute("UPDATE digest_schedules SET paused = ?, active_since = ? WHERE id = ?",
                            [int(paused), iso(now), schedule_id])

    # -- runs and posted documents -------------------------------------------------------------
    def runs(self, status: str | None = None) -> list[Run]:
        """Every run (or those in `status`), oldest first."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        return [_run(row) for row in self.db.query(f"SELECT * FROM digest_runs {where} ORDER BY created_at", params)]

    def run(self, key: str) -> Run | None:
        rows = list(self.db.query("SELECT * FROM digest_runs WHERE key = ?", [key]))
        return _run(rows[0]) if rows else None

    def last_run(self, target: Target) -> Run | None:
        """The run of `target` updated last."""
        rows = list(self.db.query("SELECT * FROM digest_runs WHERE target = ? "
                                  "ORDER BY updated_at DESC, created_at DESC, rowid DESC LIMIT 1", [target.key]))
        return _run(rows[0]) if rows else None

    def covered_until(self, schedule_id: int) -> dt.datetime | None:
        """The end of the latest period of the schedule that needs no further attempt."""
        marks = ",".join("?" * len(COVERED))
        row = self.db.execute(
            f"SELECT max(period_end) FROM digest_runs WHERE schedule_id = ? AND status IN ({marks})",
            [schedule_id, *COVERED]).fetchone()
        return parse_iso(row[0])

    def last_posted_at(self, target: Target) -> dt.datetime | None:
        row = self.db.execute("SELECT max(posted_at) FROM digest_runs WHERE target = ?", [target.key]).fetchone()
        return parse_iso(row[0])

    def posted_doc_ids(self, target: Target) -> set[str]:
        """The documents ever posted to `target`."""
        return {row[0] for row in self.db.execute("SELECT doc_id FROM digest_posted WHERE target = ?", [target.key])}

    def record_run(self, key: str, schedule_id: int | None, target: Target, period: Period | None,
                   doc_ids: list[str], now: dt.datetime, status: str = PENDING) -> None:
        """Insert or restart a run (one more attempt), carrying `doc_ids`."""
        with self.database.transaction():
            self.db.execute(
                "INSERT INTO digest_runs(key, schedule_id, target, platform, workspace, channel, period_start, "
                "period_end, fires, status, doc_ids, attempts, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "status = excluded.status, doc_ids = excluded.doc_ids, attempts = attempts + 1, error = NULL, "
                "retry_at = NULL, updated_at = excluded.updated_at",
                [key, schedule_id, target.key, target.platform, target.workspace, target.channel,
                 period and iso(period.start), period and iso(period.end), period and period.fires,
                 status, json.dumps(doc_ids), iso(now), iso(now)])

    def posted_stories(self, target: Target, limit: int = 200) -> list[PostedStory]:
        """The grouped stories posted to `target`, newest first."""
        rows = self.db.execute("SELECT run_key, label, doc_ids, names, posted_at FROM digest_stories "
                               "WHERE target = ? ORDER BY posted_at DESC, id DESC LIMIT ?", [target.key, limit])
        return [PostedStory(key, label, json.loads(ids), frozenset(json.loads(names)), parse_iso(at))
                for key, label, ids, names, at in rows.fetchall()]

    def record_posted(self, key: str, target: Target, ref: str | None, doc_ids: list[str],
                      now: dt.datetime, status: str = POSTED,
                      stories: list[tuple[str, list[str], list[str]]] = ()) -> None:
        """The run's outcome, its documents as posted to the channel and its stories (label, doc ids,
        names), in one transaction."""
        with self.database.transaction():
            self.db.execute("UPDATE digest_runs SET status = ?, message_ref = ?, error = NULL, retry_at = NULL, "
                            "posted_at = ?, updated_at = ? WHERE key = ?", [status, ref, iso(now), iso(now), key])
            self.db.conn.executemany("INSERT OR IGNORE INTO digest_posted VALUES (?, ?, ?, ?)",
                                     [(target.key, doc_id, key, iso(now)) for doc_id in doc_ids])
            self.db.conn.executemany(
                "INSERT INTO digest_stories(run_key, target, label, doc_ids, names, posted_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(key, target.key, label, json.dumps(ids), json.dumps(names), iso(now)) for label, ids, names in stories])

    def record_failed(self, key: str, error: str, retry_at: dt.datetime | None, now: dt.datetime) -> None:
        with self.database.transaction():
            self.db.execute(
                "UPDATE digest_runs SET status = ?, error = ?, retry_at = ?, updated_at = ? WHERE key = ?",
                [FAILED, error[:500], retry_at and iso(retry_at), iso(now), key])

    # -- leases --------------------------------------------------------------------------------
    def try_acquire_lease(self, name: str, holder: str, until: dt.datetime, now: dt.datetime) -> bool:
        """Take (or extend) lease `name` for `holder` until `until`, unless another holder has it past `now`.

        One conditional upsert: atomic on its own, as the same statement would be on a database server.
        """
        with self.database.transaction():
            cursor = self.db.execute(
                "INSERT INTO leases(name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "holder = excluded.holder, expires_at = excluded.expires_at "
                "WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
                [name, holder, iso(until), iso(now)])
            return cursor.rowcount == 1

    def renew_lease(self, name: str, holder: str, until: dt.datetime) -> bool:
        """Extend the lease if `holder` still has it (an expired one nobody took still counts)."""
        with self.database.transaction():
            cursor = self.db.execute("UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?",
                                     [iso(until), name, holder])
            return cursor.rowcount == 1

    def release_lease(self, name: str, holder: str) -> None:
        with self.database.transaction():
            self.db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", [name, holder])
