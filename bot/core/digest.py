"""Digests: what is new for a channel since its last digest, posted exactly once.

SQLite is the single source of truth (the scheduler in schedule.py only wakes `run_due` up):
- `digest_schedules`: at most one per channel (target): local time, IANA zone, days, paused, note-when-empty.
- `digest_runs`: one row per (schedule, period), keyed `s{id}@{latest scheduled time, UTC}`, or one per
  `digest now`. It is written as `pending`, with the ids of the documents it carries, BEFORE posting, and
  becomes `posted` (with the platform's message reference) in the same transaction that records its
  documents in `digest_posted`. `empty`: nothing new, nothing (or a short note) posted. `failed`: the
  platform refused; transient failures are retried at `retry_at`, permanent ones fold into the next
  scheduled run. `unknown`: see the crash policy below.
- `digest_posted`: every (channel, document) ever posted; a document is never in that channel's digests again.
- `leases`: one named lease; only its holder runs digests, so two processes on one database post once.

What a run covers is a pure function of (schedule, last covered run, now): `due_period`. Every scheduled
time missed since the last covered run is folded into one run (a three-day outage gives one catch-up
digest that says it covers three days).

Crash policy. A `pending` run seen by the lease holder was left by a process that stopped while posting
(the lease outlives a crash by at most LEASE_TTL). If the platform's poster can look for the message
(`async def find(target, run_key) -> str | None`; the run key is in the posted reply's `data["run"]`),
the run is settled by what it finds: posted, or retried when not found. Platforms we cannot ask (the
console) get at-most-once: the run is marked `unknown`, shown as such in `digest status`, and its
documents count as posted. Posting a document twice is the failure this design refuses.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import socket
import sys
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import sqlite_utils

from bot.core.models import DigestItem, Document, PostError, Reply, Request, Target, UserError
from bot.core.registry import Param, command
from bot.core.store import Store, migrations

if TYPE_CHECKING:
    from bot.core.service import Poster, Service

log = logging.getLogger(__name__)

UTC = dt.timezone.utc
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_SETS = {"daily": range(7), "everyday": range(7), "weekdays": range(5), "weekends": range(5, 7)}
MAX_ITEMS = 25  # per digest; the rest wait for the next one (newest first)
SUMMARY_CHARS = 300
LEASE_NAME = "digests"
LEASE_TTL = dt.timedelta(minutes=5)  # how long a crashed holder blocks the others
RETRY_FIRST = dt.timedelta(minutes=1)  # transient post failures back off 1, 2, 4 ... minutes
RETRY_MAX = dt.timedelta(hours=1)

SCHEDULE_EXAMPLE = "/digest schedule 09:00 Europe/Berlin weekdays"
PENDING, POSTED, EMPTY, FAILED, UNKNOWN = "pending", "posted", "empty", "failed", "unknown"
COVERED = (POSTED, EMPTY, UNKNOWN)  # a run in one of these states needs no further attempt


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


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _parse_iso(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


# -- schedules: parsing and the pure "what is due" computation ------------------------------------
@dataclass(frozen=True)
class Schedule:
    id: int
    target: Target
    at: dt.time
    timezone: str
    days: frozenset[int]  # 0 = Monday
    active_since: dt.datetime  # set, changed or resumed then: no catch-up for times before this
    paused: bool = False
    notify_empty: bool = False
    created_by: str = ""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        return f"{self.at:%H:%M} {self.timezone}, {days_text(self.days)}"


@dataclass(frozen=True)
class Period:
    """The scheduled times one run covers: (start, end], `fires` of them; more than one is a catch-up."""

    start: dt.datetime
    end: dt.datetime
    fires: int

    def days(self, zone: ZoneInfo) -> int:
        return (self.end.astimezone(zone).date() - self.start.astimezone(zone).date()).days


def parse_time(text: str) -> dt.time:
    """`09:00`, `9:30`, `21:15`, `9am`, `7:30pm` -> a time of day."""
    match = re.fullmatch(r"(\d{1,2})(?:[:.h](\d{2}))?\s*([ap]\.?m\.?)?", text.strip().lower())
    if match and (match.group(2) or match.group(3)):
        hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
        if half:
            hour = hour % 12 + (12 if half.startswith("p") else 0) if 1 <= hour <= 12 else 99
        if hour < 24 and minute < 60:
            return dt.time(hour, minute)
    raise UserError(f"Bad time {text.strip()[:40]!r}: use HH:MM (24-hour) such as 09:00, or 9am / 7:30pm.")


def _day(token: str) -> int:
    for number, name in enumerate(_FULL_DAY_NAMES):
        if len(token) >= 2 and name.startswith(token):
            return number
    raise ValueError(token)


def parse_days(text: str) -> frozenset[int]:
    """`daily`, `weekdays`, `weekends`, `mon-fri`, `mon,wed,fri`, `fri-mon` -> weekday numbers (Monday 0)."""
    days: set[int] = set()
    for part in re.split(r"[,\s]+", text.strip().lower()):
        if not part:
            continue
        try:
            if part in DAY_SETS:
                days.update(DAY_SETS[part])
            elif "-" in part:
                first, last = (_day(t) for t in part.split("-", 1))
                days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
            else:
                days.add(_day(part))
        except ValueError:
            raise UserError(f"Unknown day {part[:20]!r}: use mon..sun, ranges like mon-fri, lists like "
                            "mon,wed,fri, or daily / weekdays / weekends.") from None
    if not days:
        raise UserError("No days given: use daily, weekdays, mon-fri or mon,wed,fri.")
    return frozenset(days)


def days_text(days: frozenset[int]) -> str:
    for name in ("daily", "weekdays", "weekends"):
        if days == frozenset(DAY_SETS[name]):
            return name
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def parse_timezone(name: str) -> str:
    """An IANA zone name, spelled as the tz database does (matched case-insensitively)."""
    name = name.strip()
    try:
        ZoneInfo(name)
        return name
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a region such as "Europe" is a folder of zones
        pass
    zones = available_timezones()
    exact = {zone.lower(): zone for zone in zones}.get(name.lower())
    if exact:
        return exact
    area = name.rstrip("/")
    region = sorted(zone for zone in zones if area and zone.lower().startswith(area.lower() + "/"))
    examples = f"{area} is a region, so one of its zones such as {', '.join(region[:3])}" if region else (
        "such as Europe/Berlin or America/New_York")
    raise UserError(f"Unknown timezone {name[:60]!r}: write Area/City as in the tz database, {examples}.")


def _local_fire(schedule: Schedule, day: dt.date) -> dt.datetime:
    """The scheduled instant on a local day (a time skipped by a DST change fires an hour later, as cron does)."""
    return dt.datetime.combine(day, schedule.at, schedule.zone).astimezone(UTC)


def fire_times(schedule: Schedule, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """Every scheduled time in (after, until], in UTC; always at the local wall-clock time, across DST."""
    zone = schedule.zone
    day, last = after.astimezone(zone).date() - dt.timedelta(days=1), until.astimezone(zone).date()
    times = []
    while day <= last:
        if day.weekday() in schedule.days:
            moment = _local_fire(schedule, day)
            if after < moment <= until:
                times.append(moment)
        day += dt.timedelta(days=1)
    return times


def next_fire(schedule: Schedule, after: dt.datetime) -> dt.datetime:
    return fire_times(schedule, after, after + dt.timedelta(days=8))[0]


def previous_fire(schedule: Schedule, before: dt.datetime) -> dt.datetime:
    """The last scheduled time strictly before `before`."""
    return [t for t in fire_times(schedule, before - dt.timedelta(days=8), before) if t < before][-1]


def due_period(schedule: Schedule, covered_until: dt.datetime | None, now: dt.datetime) -> Period | None:
    """What a run at `now` covers: every scheduled time after the last covered one (and after the
    schedule was set or resumed), up to now. None when nothing is due or the schedule is paused."""
    if schedule.paused:
        return None
    after = max(schedule.active_since, covered_until) if covered_until else schedule.active_since
    fires = fire_times(schedule, after, now)
    if not fires:
        return None
    return Period(previous_fire(schedule, fires[0]), fires[-1], len(fires))


def run_key(schedule_id: int, end: dt.datetime) -> str:
    return f"s{schedule_id}@{_iso(end)}"


# -- schedule storage ------------------------------------------------------------------------------
def _schedule(row: dict) -> Schedule:
    return Schedule(
        id=row["id"], target=Target(row["platform"], row["workspace"], row["channel"]),
        at=dt.time.fromisoformat(row["at_time"]), timezone=row["timezone"],
        days=frozenset(DAY_NAMES.index(d) for d in row["days"].split(",")), paused=bool(row["paused"]),
        notify_empty=bool(row["notify_empty"]), created_by=row["created_by"] or "",
        active_since=_parse_iso(row["active_since"]),
    )


def load_schedules(store: Store, schedule_id: int | None = None) -> list[Schedule]:
    where, params = ("WHERE id = ?", [schedule_id]) if schedule_id is not None else ("", [])
    return [_schedule(row) for row in store.db.query(f"SELECT * FROM digest_schedules {where} ORDER BY id", params)]


def schedule_for(store: Store, target: Target) -> Schedule | None:
    rows = list(store.db.query(
        "SELECT * FROM digest_schedules WHERE platform = ? AND workspace = ? AND channel = ?",
        [target.platform, target.workspace, target.channel]))
    return _schedule(rows[0]) if rows else None


def save_schedule(store: Store, target: Target, at: dt.time, timezone: str, days: frozenset[int],
                  notify_empty: bool, created_by: str, now: dt.datetime) -> Schedule:
    """Create or replace the channel's schedule; times before `now` are never caught up."""
    with store.transaction():
        store.db.execute(
            "INSERT INTO digest_schedules(platform, workspace, channel, at_time, timezone, days, paused, "
            "notify_empty, created_by, created_at, active_since) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?) "
            "ON CONFLICT(platform, workspace, channel) DO UPDATE SET at_time = excluded.at_time, "
            "timezone = excluded.timezone, days = excluded.days, paused = 0, notify_empty = excluded.notify_empty, "
            "created_by = excluded.created_by, created_at = excluded.created_at, active_since = excluded.active_since",
            [target.platform, target.workspace, target.channel, f"{at:%H:%M}", timezone,
             ",".join(DAY_NAMES[d] for d in sorted(days)), int(notify_empty), created_by, _iso(now), _iso(now)])
    return schedule_for(store, target)


def set_paused(store: Store, schedule: Schedule, paused: bool, now: dt.datetime) -> None:
    """Pausing stops runs; resuming starts counting again from now (no catch-up for the pause)."""
    with store.transaction():
        store.db.execute("UPDATE digest_schedules SET paused = ?, active_since = ? WHERE id = ?",
                         [int(paused), _iso(now), schedule.id])


# -- runs and posted documents -----------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    key: str
    schedule_id: int | None
    target: Target
    period_end: dt.datetime | None
    fires: int
    status: str
    doc_ids: list[str]
    message_ref: str | None
    error: str | None
    retry_at: dt.datetime | None
    posted_at: dt.datetime | None
    updated_at: dt.datetime


def _run(row: dict) -> Run:
    return Run(row["key"], row["schedule_id"], Target(row["platform"], row["workspace"], row["channel"]),
               _parse_iso(row["period_end"]), row["fires"] or 0, row["status"], json.loads(row["doc_ids"] or "[]"),
               row["message_ref"], row["error"], _parse_iso(row["retry_at"]), _parse_iso(row["posted_at"]),
               _parse_iso(row["updated_at"]))


def load_runs(store: Store, where: str, params: list, order: str = "created_at") -> list[Run]:
    return [_run(row) for row in store.db.query(f"SELECT * FROM digest_runs WHERE {where} ORDER BY {order}", params)]


def load_run(store: Store, key: str) -> Run | None:
    return next(iter(load_runs(store, "key = ?", [key])), None)


def last_run(store: Store, target: Target) -> Run | None:
    return next(iter(load_runs(store, "target = ?", [target.key], order="updated_at DESC, created_at DESC, rowid DESC")), None)


def covered_until(store: Store, schedule_id: int) -> dt.datetime | None:
    marks = ",".join("?" * len(COVERED))
    row = store.db.execute(f"SELECT max(period_end) FROM digest_runs WHERE schedule_id = ? AND status IN ({marks})",
                           [schedule_id, *COVERED]).fetchone()
    return _parse_iso(row[0])


def last_posted_at(store: Store, target: Target) -> dt.datetime | None:
    row = store.db.execute("SELECT max(posted_at) FROM digest_runs WHERE target = ?", [target.key]).fetchone()
    return _parse_iso(row[0])


def new_documents(store: Store, target: Target) -> list[Document]:
    """Indexed documents never posted to `target`, newest first."""
    posted = {row[0] for row in store.db.execute("SELECT doc_id FROM digest_posted WHERE target = ?", [target.key])}
    return [doc for doc in store.documents() if doc.id not in posted]


def _record_run(store: Store, key: str, schedule_id: int | None, target: Target, period: Period | None,
                doc_ids: list[str], now: dt.datetime, status: str = PENDING) -> None:
    """Insert or restart a run: `pending` before posting (with the documents it carries), or `empty`."""
    with store.transaction():
        store.db.execute(
            "INSERT INTO digest_runs(key, schedule_id, target, platform, workspace, channel, period_start, "
            "period_end, fires, status, doc_ids, attempts, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT(key) DO UPDATE SET "
            "status = excluded.status, doc_ids = excluded.doc_ids, attempts = attempts + 1, error = NULL, "
            "retry_at = NULL, updated_at = excluded.updated_at",
            [key, schedule_id, target.key, target.platform, target.workspace, target.channel,
             period and _iso(period.start), period and _iso(period.end), period and period.fires,
             status, json.dumps(doc_ids), _iso(now), _iso(now)])


def _record_posted(store: Store, key: str, target: Target, ref: str | None, doc_ids: list[str],
                   now: dt.datetime, status: str = POSTED) -> None:
    """The run's outcome and its documents as posted to the channel, in one transaction."""
    with store.transaction():
        store.db.execute("UPDATE digest_runs SET status = ?, message_ref = ?, error = NULL, retry_at = NULL, "
                         "posted_at = ?, updated_at = ? WHERE key = ?", [status, ref, _iso(now), _iso(now), key])
        store.db.conn.executemany("INSERT OR IGNORE INTO digest_posted VALUES (?, ?, ?, ?)",
                                  [(target.key, doc_id, key, _iso(now)) for doc_id in doc_ids])


def _record_failed(store: Store, key: str, error: str, retry_at: dt.datetime | None, now: dt.datetime) -> None:
    with store.transaction():
        store.db.execute("UPDATE digest_runs SET status = ?, error = ?, retry_at = ?, updated_at = ? WHERE key = ?",
                         [FAILED, error[:500], retry_at and _iso(retry_at), _iso(now), key])


# -- the lease -----------------------------------------------------------------------------------------
class Lease:
    """A named lease in SQLite, taken atomically (BEGIN IMMEDIATE); not re-entrant: every Lease object
    is its own holder, so two coroutines of one process exclude each other as two processes do."""

    def __init__(self, store: Store, clock, name: str = LEASE_NAME, ttl: dt.timedelta = LEASE_TTL):
        self.store, self.clock, self.name, self.ttl = store, clock, name, ttl
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        now = self.clock()
        with self.store.transaction():
            row = self.store.db.execute("SELECT holder, expires_at FROM leases WHERE name = ?", [self.name]).fetchone()
            if row and row[0] != self.holder and _parse_iso(row[1]) > now:
                return False
            self.store.db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                                  [self.name, self.holder, _iso(now + self.ttl)])
            return True

    def renew(self) -> bool:
        """Extend the lease if it is still ours (an expired one nobody took still is)."""
        with self.store.transaction():
            cursor = self.store.db.execute("UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?",
                                           [_iso(self.clock() + self.ttl), self.name, self.holder])
            return cursor.rowcount == 1

    def release(self) -> None:
        with self.store.transaction():
            self.store.db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", [self.name, self.holder])


class LeaseLost(Exception):
    """Another process took over the digests (ours expired): stop before posting anything."""


# -- building and posting ----------------------------------------------------------------------------
class ConsolePoster:
    """Posts to `console:NAME` targets by printing the rendered digest (stdout unless a stream is given)."""

    def __init__(self, stream=None):
        self.stream = stream

    async def post(self, target: Target, reply: Reply) -> str:
        from bot.adapters.render_console import to_text  # the console's renderer; imported lazily

        stream = self.stream or sys.stdout
        stream.write(f"--- digest for {target.key} ---\n{to_text(reply)}\n\n")
        stream.flush()
        return f"{target.key}#{(reply.data or {}).get('run', '')}"


CONSOLE_POSTER = ConsolePoster()


def poster_for(service: "Service", platform: str) -> "Poster | None":
    """The registered poster; console targets fall back to printing on stdout."""
    return service.posters.get(platform) or (CONSOLE_POSTER if platform == "console" else None)


def brief(overview: str) -> str:
    """A digest item's one line: the summary's overview sentence (its key points are behind /summary),
    cut at a word within SUMMARY_CHARS."""
    line = " ".join(overview.split())
    return line if len(line) <= SUMMARY_CHARS else line[:SUMMARY_CHARS].rsplit(" ", 1)[0] + "…"


async def build_items(service: "Service", target: Target, lease: Lease | None = None) -> tuple[list[DigestItem], int]:
    """The documents not yet posted to `target`, newest first (at most MAX_ITEMS), with their summaries;
    and how many more wait for the next digest."""
    new = new_documents(service.store, target)
    items = []
    for doc in new[:MAX_ITEMS]:
        summary = await service.summarize(doc)
        if lease and not lease.renew():
            raise LeaseLost()
        items.append(DigestItem(doc.id, doc.title, doc.link, doc.url, doc.path, brief(summary.overview), doc.published))
    return items, len(new) - len(items)


def _day_label(moment: dt.datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y}"


def _when(moment: dt.datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{_day_label(local, zone)} {local:%H:%M %Z}"


def _count(n: int) -> str:
    return f"{n} new document" + ("" if n == 1 else "s")


def digest_reply(items: list[DigestItem], remaining: int, zone: ZoneInfo, now: dt.datetime,
                 period: Period | None, key: str) -> Reply:
    """The post: a header with the period and count, then the items (the renderer splits long ones)."""
    moment = period.end if period else now
    lines = []
    if period and period.fires > 1:
        lines.append(f"Catch-up digest: covers **{period.days(zone)} days** ({_day_label(period.start, zone)} to "
                     f"{_day_label(period.end, zone)}), {period.fires} scheduled digests in one.")
    lines.append(f"**{_count(len(items))}**, newest first." if items else "Nothing new since the last digest.")
    if remaining:
        lines.append(f"_{remaining} more follow in the next digest._")
    return Reply("\n".join(lines), title=f"Digest · {_day_label(moment, zone)}", items=items, data={"run": key})


def digest_data(target: Target, since: dt.datetime | None, items: list[DigestItem]) -> dict:
    """The JSON object scripts get from `digest preview/now --json`."""
    return {"target": target.key, "since": since and _iso(since),
            "items": [{"doc_id": i.doc_id, "title": i.title, "path": i.path, "url": i.url, "summary": i.summary}
                      for i in items]}


@dataclass(frozen=True)
class Outcome:
    key: str
    status: str  # POSTED, EMPTY (nothing new; `note` when a short note was posted) or FAILED
    items: list[DigestItem]
    since: dt.datetime | None
    error: str | None = None
    note: bool = False


def _retry_at(now: dt.datetime, attempts: int, error: PostError | None) -> dt.datetime:
    backoff = min(RETRY_FIRST * 2 ** max(attempts - 1, 0), RETRY_MAX)
    return now + max(backoff, dt.timedelta(seconds=(error.retry_after if error else None) or 0))


async def post_digest(service: "Service", lease: Lease, target: Target, key: str, *,
                      schedule: Schedule | None = None, period: Period | None = None) -> Outcome:
    """Build, record as pending, post, record as posted: one run. Scheduled runs (with a period) that
    fail transiently are retried at `retry_at`; manual ones are reported to whoever asked."""
    store = service.store
    since = last_posted_at(store, target)
    items, remaining = await build_items(service, target, lease)
    zone = schedule.zone if schedule else ZoneInfo(service.settings.timezone)
    now = service.clock()
    if not items and not (schedule and schedule.notify_empty):
        if period:
            _record_run(store, key, schedule.id, target, period, [], now, status=EMPTY)
        return Outcome(key, EMPTY, [], since)
    reply = digest_reply(items, remaining, zone, now, period, key)
    doc_ids = [item.doc_id for item in items]
    if not lease.renew():
        raise LeaseLost()
    _record_run(store, key, schedule and schedule.id, target, period, doc_ids, now)
    try:
        ref = await poster_for(service, target.platform).post(target, reply)
    except Exception as exc:  # PostError, or a poster's bug: either way the run is not posted
        error = exc if isinstance(exc, PostError) else None
        if error is None:
            log.exception("posting digest %s to %s failed", key, target.key)
        attempts = store.db.execute("SELECT attempts FROM digest_runs WHERE key = ?", [key]).fetchone()[0]
        retry = period is not None and not (error and error.permanent)
        _record_failed(store, key, str(exc) or type(exc).__name__,
                       _retry_at(now, attempts, error) if retry else None, service.clock())
        return Outcome(key, FAILED, items, since, str(exc))
    _record_posted(store, key, target, ref, doc_ids, service.clock(), status=POSTED if items else EMPTY)
    return Outcome(key, POSTED, items, since) if items else Outcome(key, EMPTY, [], since, note=True)


async def reconcile(service: "Service") -> None:
    """Settle runs left `pending` by a process that stopped while posting (see the crash policy)."""
    for run in load_runs(service.store, "status = ?", [PENDING]):
        poster = poster_for(service, run.target.platform)
        if poster is None:
            continue  # that platform's adapter is not up yet; a later pass settles it
        find = getattr(poster, "find", None)
        if find is None:
            log.warning("digest %s: the bot stopped while posting it to %s; counting it as posted", run.key,
                        run.target.key)
            _record_posted(service.store, run.key, run.target, None, run.doc_ids, run.updated_at, status=UNKNOWN)
            continue
        try:
            ref = await find(run.target, run.key)
        except Exception:  # the platform cannot tell us now: leave the run pending for a later pass
            log.exception("digest %s: cannot look for its message on %s", run.key, run.target.platform)
            continue
        now = service.clock()
        if ref:
            _record_posted(service.store, run.key, run.target, ref, run.doc_ids, now)
        else:
            _record_failed(service.store, run.key, "the bot stopped before the post reached the platform",
                           now if run.schedule_id is not None else None, now)


async def run_due(service: "Service", schedule_id: int | None = None) -> list[Outcome]:
    """Post every digest that is due (one schedule's, or all): reconcile, retry, catch up, post.

    Safe to call at any time, from any number of processes: what is due comes from the database and
    `service.clock()`, and only the lease holder acts. The scheduler and start-up both call this.
    """
    lease = Lease(service.store, service.clock)
    if not lease.acquire():
        log.debug("another digest runner holds the lease")
        return []
    outcomes = []
    try:
        await reconcile(service)
        now = service.clock()
        for schedule in load_schedules(service.store, schedule_id):
            if poster_for(service, schedule.target.platform) is None:
                continue
            period = due_period(schedule, covered_until(service.store, schedule.id), now)
            if period is None:
                continue
            key = run_key(schedule.id, period.end)
            run = load_run(service.store, key)
            if run and run.status == FAILED and (run.retry_at is None or run.retry_at > now):
                continue  # backing off, or refused for good: the next scheduled time folds it in
            try:
                outcomes.append(await post_digest(service, lease, schedule.target, key, schedule=schedule,
                                                  period=period))
            except LeaseLost:
                raise
            except Exception:  # e.g. the summarizer failed: the other channels still get theirs
                log.exception("digest %s for %s could not be built", key, schedule.target.key)
    except LeaseLost:
        log.warning("digest lease lost to another process; stopping this pass")
    finally:
        lease.release()
    return outcomes


# -- commands --------------------------------------------------------------------------------------
def _require_schedule(service: "Service", target: Target) -> Schedule:
    schedule = schedule_for(service.store, target)
    if schedule is None:
        raise UserError(f"This channel has no digest schedule. Set one with {SCHEDULE_EXAMPLE}.")
    return schedule


@command("digest preview", slow=True)
async def digest_preview(service: "Service", request: Request) -> Reply:
    """Show what this channel's next digest would contain (posts nothing)."""
    target = request.target
    items, remaining = await build_items(service, target)
    schedule = schedule_for(service.store, target)
    zone = schedule.zone if schedule else ZoneInfo(service.settings.timezone)
    data = digest_data(target, last_posted_at(service.store, target), items)
    if not items:
        return Reply("Nothing new for this channel since its last digest.", title="Digest preview", data=data)
    reply = digest_reply(items, remaining, zone, service.clock(), None, "preview")
    when = schedule and not schedule.paused and _when(next_fire(schedule, service.clock()), zone)
    reply.text += f"\nNext scheduled digest: {when}." if when else "\nNo active schedule: /digest now posts it."
    reply.title, reply.data = f"Digest preview: {_count(len(items))}", data
    return reply


@command("digest now", slow=True, admin_aware=True)
async def digest_now(service: "Service", request: Request) -> Reply:
    """Post this channel's digest now: all that is new since the last one (admins; others get a preview)."""
    target = request.target
    if not request.actor.is_admin:  # posting marks the documents delivered: the scheduled digest would lose them
        preview = await digest_preview(service, request)
        preview.text = "Posting a digest is for admins; nothing was posted. Here is what it would contain.\n" + (
            preview.text)
        return preview
    if poster_for(service, target.platform) is None:
        raise UserError(f"Cannot post to {target.platform} from here: that adapter is not running.")
    lease = Lease(service.store, service.clock)
    if not lease.acquire():
        raise UserError("Another digest is being posted right now; try again in a minute.")
    try:
        key = f"now:{target.key}:{_iso(service.clock())}:{uuid.uuid4().hex[:6]}"
        outcome = await post_digest(service, lease, target, key, schedule=schedule_for(service.store, target))
    except LeaseLost:
        raise UserError("Another digest runner took over; nothing was posted.") from None
    finally:
        lease.release()
    data = digest_data(target, outcome.since, outcome.items if outcome.status == POSTED else [])
    if outcome.status == FAILED:
        return Reply(f"The digest could not be posted: {outcome.error}. Its documents stay new for this channel.",
                     ok=False, title="Digest not posted", data=data)
    if outcome.status == EMPTY:
        done = "posted a short note" if outcome.note else "nothing was posted"
        return Reply(f"Nothing new for this channel since its last digest; {done}.", title="Digest", data=data)
    return Reply(f"Posted the digest ({_count(len(outcome.items))}) to this channel.", title="Digest", data=data)


@command("digest schedule",
         Param("time", "Local time of day: HH:MM (24-hour) or 9am / 7:30pm"),
         Param("timezone", "IANA timezone such as Europe/Berlin (default: the bot's timezone)", required=False),
         Param("days", "Which days: daily, weekdays, weekends, mon-fri or mon,wed,fri (default: daily)",
               required=False),
         Param("empty", "When nothing is new: skip (post nothing, the default) or note (post a short note)",
               required=False),
         admin=True)
async def digest_schedule(service: "Service", request: Request) -> Reply:
    """Set when this channel gets its digest (replaces its schedule)."""
    args = request.args
    at = parse_time(args["time"])
    zone_text, days_arg = args.get("timezone"), args.get("days")
    if zone_text and not days_arg and "/" not in zone_text and zone_text.upper() != "UTC":
        try:  # `/digest schedule 09:00 weekdays`: the second word is the days, not a zone
            parse_days(zone_text)
            zone_text, days_arg = None, zone_text
        except UserError:
            pass
    timezone = parse_timezone(zone_text or service.settings.timezone)
    days = parse_days("daily" if days_arg is None else days_arg)  # given but blank: an error, not "daily"
    empty = (args.get("empty") or "skip").strip().lower()
    if empty not in ("skip", "note"):
        raise UserError("empty must be skip (post nothing when nothing is new) or note (post a short note).")
    actor = request.actor
    schedule = save_schedule(service.store, request.target, at, timezone, days, empty == "note",
                             f"{actor.id} ({actor.name})" if actor.name else actor.id, service.clock())
    when = _when(next_fire(schedule, service.clock()), schedule.zone)
    return Reply(f"Digest for this channel: **{schedule.describe()}**"
                 f"{' (a short note when nothing is new)' if schedule.notify_empty else ''}.\nNext: {when}.",
                 title="Digest scheduled", data=_schedule_data(schedule, service.clock()))


@command("digest pause", admin=True)
async def digest_pause(service: "Service", request: Request) -> Reply:
    """Pause this channel's scheduled digests."""
    schedule = _require_schedule(service, request.target)
    set_paused(service.store, schedule, True, service.clock())
    return Reply(f"Digests paused ({schedule.describe()}). /digest resume restarts them.", title="Digest paused",
                 data=_schedule_data(schedule_for(service.store, request.target), service.clock()))


@command("digest resume", admin=True)
async def digest_resume(service: "Service", request: Request) -> Reply:
    """Resume this channel's scheduled digests (no catch-up for the paused time)."""
    schedule = _require_schedule(service, request.target)
    set_paused(service.store, schedule, False, service.clock())
    schedule = schedule_for(service.store, request.target)
    when = _when(next_fire(schedule, service.clock()), schedule.zone)
    return Reply(f"Digests resumed ({schedule.describe()}). Next: {when}.", title="Digest resumed",
                 data=_schedule_data(schedule, service.clock()))


@command("digest status")
async def digest_status(service: "Service", request: Request) -> Reply:
    """Show this channel's digest schedule, its last and next run, and what is waiting."""
    target, now = request.target, service.clock()
    schedule = schedule_for(service.store, target)
    zone = schedule.zone if schedule else ZoneInfo(service.settings.timezone)
    run = last_run(service.store, target)
    pending = len(new_documents(service.store, target))
    lines = [f"**Schedule:** {schedule.describe() if schedule else f'none (admins: {SCHEDULE_EXAMPLE})'}"]
    if schedule:
        lines.append(f"**Next digest:** {'paused' if schedule.paused else _when(next_fire(schedule, now), zone)}")
    lines.append(f"**Last digest:** {_run_text(run, zone) if run else 'none yet'}")
    lines.append(f"**Waiting:** {_count(pending)}")
    data = {"target": target.key, "schedule": schedule and _schedule_data(schedule, now), "pending_items": pending,
            "last_run": run and {"key": run.key, "status": run.status, "items": len(run.doc_ids),
                                 "message_ref": run.message_ref, "error": run.error,
                                 "retry_at": run.retry_at and _iso(run.retry_at), "updated_at": _iso(run.updated_at)}}
    return Reply("\n".join(lines), title="Digest status", data=data)


def _run_text(run: Run, zone: ZoneInfo) -> str:
    when = _when(run.updated_at, zone)
    if run.status == POSTED:
        return f"{when}: posted {len(run.doc_ids)} document" + ("" if len(run.doc_ids) == 1 else "s")
    if run.status == EMPTY:
        return f"{when}: nothing new" + (" (note posted)" if run.posted_at else ", nothing posted")
    if run.status == UNKNOWN:
        return (f"{when}: outcome unknown, the bot stopped while posting; its {len(run.doc_ids)} "
                "documents count as posted")
    if run.status == PENDING:
        return f"{when}: being posted"
    retry = f"retrying {_when(run.retry_at, zone)}" if run.retry_at else "will try again at the next scheduled time"
    return f"{when}: failed ({run.error}); {retry}"


def _schedule_data(schedule: Schedule, now: dt.datetime) -> dict:
    return {"id": schedule.id, "target": schedule.target.key, "time": f"{schedule.at:%H:%M}",
            "timezone": schedule.timezone, "days": days_text(schedule.days), "paused": schedule.paused,
            "notify_empty": schedule.notify_empty, "created_by": schedule.created_by,
            "next_run": None if schedule.paused else _iso(next_fire(schedule, now))}
