"""The digest outbox: each run recorded before and after posting, under a lease, so a digest is posted once.

The repository (store.schedules) is the single source of truth; the scheduler only wakes `run_due` up.
A run is written as `pending`, with the ids of the documents it carries, BEFORE posting, and becomes
`posted` (with the platform's message reference) in the same transaction that records its documents as
posted to the channel; a document is never in that channel's digests again. `empty`: nothing new, nothing
(or a short note) posted. `failed`: the platform refused; transient failures are retried at `retry_at`,
permanent ones fold into the next scheduled run. Only the holder of the `digests` lease runs digests, so
two processes on one database post once.

Crash policy. A `pending` run seen by the lease holder was left by a process that stopped while posting
(the lease outlives a crash by at most LEASE_TTL). If the platform's poster can look for the message
(`async def find(target, run_key) -> str | None`; the run key is in the posted reply's `data["run"]`),
the run is settled by what it finds: posted, or retried when not found. Platforms we cannot ask (the
console) get at-most-once: the run is marked `unknown`, shown as such in `digest status`, and its
documents count as posted. Posting a document twice is the failure this design refuses.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.core.digest_post import build_items, digest_reply, find_stories
from bot.core.digest_rules import EMPTY, FAILED, PENDING, POSTED, UNKNOWN, Period, Schedule, due_period, run_key
from bot.core.values import DigestItem, PostError, Target
from bot.core.stories import Story
from bot.core.store import Store

if TYPE_CHECKING:
    from bot.core.service import Service

log = logging.getLogger(__name__)

LEASE_NAME = "digests"
LEASE_TTL = dt.timedelta(minutes=5)  # how long a crashed holder blocks the others
RETRY_FIRST = dt.timedelta(minutes=1)  # transient post failures back off 1, 2, 4 ... minutes
RETRY_MAX = dt.timedelta(hours=1)


class Lease:
    """A named lease held through the repository; not re-entrant: every Lease object is its own
    holder, so two coroutines of one process exclude each other as two processes do."""

    def __init__(self, store: Store, clock, name: str = LEASE_NAME, ttl: dt.timedelta = LEASE_TTL):
        self.schedules, self.clock, self.name, self.ttl = store.schedules, clock, name, ttl
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        now = self.clock()
        return self.schedules.try_acquire_lease(self.name, self.holder, now + self.ttl, now)

    def renew(self) -> bool:
        """Extend the lease if it is still ours (an expired one nobody took still is)."""
        return self.schedules.renew_lease(self.name, self.holder, self.clock() + self.ttl)

    def keep(self) -> None:
        """Renew, or stop whatever is under way by raising LeaseLost."""
        if not self.renew():
            raise LeaseLost()

    def release(self) -> None:
        self.schedules.release_lease(self.name, self.holder)


class LeaseLost(Exception):
    """Another process took over the digests (ours expired): stop before posting anything."""


@dataclass(frozen=True)
class Outcome:
    key: str
    status: str  # POSTED, EMPTY (nothing new; `note` when a short note was posted) or FAILED
    items: list[DigestItem]
    since: dt.datetime | None
    error: str | None = None
    note: bool = False
    stories: list[Story] = field(default_factory=list)


def _retry_at(now: dt.datetime, attempts: int, error: PostError | None) -> dt.datetime:
    backoff = min(RETRY_FIRST * 2 ** max(attempts - 1, 0), RETRY_MAX)
    return now + max(backoff, dt.timedelta(seconds=(error.retry_after if error else None) or 0))


async def post_digest(service: "Service", lease: Lease, target: Target, key: str, *,
                      schedule: Schedule | None = None, period: Period | None = None) -> Outcome:
    """Build, record as pending, post, record as posted: one run. Scheduled runs (with a period) that
    fail transiently are retried at `retry_at`; manual ones are reported to whoever asked."""
    runs = service.store.schedules
    since = runs.last_posted_at(target)
    batch = await build_items(service, target, lease.keep)
    items, remaining = batch.items, batch.remaining
    zone = schedule.zone if schedule else ZoneInfo(service.settings.timezone)
    now = service.clock()
    if not items and not (schedule and schedule.notify_empty):
        if period:
            runs.record_run(key, schedule.id, target, period, [], now, status=EMPTY)
        return Outcome(key, EMPTY, [], since)
    stories = await service.in_lookup(find_stories, service, target, items)
    reply = digest_reply(items, remaining, zone, now, period, key, stories)
    doc_ids = [item.doc_id for item in items]
    lease.keep()
    runs.record_run(key, schedule and schedule.id, target, period, doc_ids, now)
    try:
        ref = await service.posters.get(target.platform).post(target, reply)
    except Exception as exc:  # PostError, or a poster's bug: either way the run is not posted
        error = exc if isinstance(exc, PostError) else None
        if error is None:
            log.exception("posting digest %s to %s failed", key, target.key)
        attempts = runs.run(key).attempts
        retry = period is not None and not (error and error.permanent)
        runs.record_failed(key, str(exc) or type(exc).__name__,
                           _retry_at(now, attempts, error) if retry else None, service.clock())
        return Outcome(key, FAILED, items, since, str(exc), stories=stories)
    runs.record_posted(key, target, ref, doc_ids, service.clock(), status=POSTED if items else EMPTY,
                       stories=[(s.label, list(s.doc_ids), list(s.names)) for s in stories])
    return Outcome(key, POSTED, items, since, stories=stories) if items else Outcome(key, EMPTY, [], since, note=True)


async def reconcile(service: "Service") -> None:
    """Settle runs left `pending` by a process that stopped while posting (see the crash policy)."""
    runs = service.store.schedules
    for run in runs.runs(PENDING):
        poster = service.posters.get(run.target.platform)
        if poster is None:
            continue  # that platform's adapter is not up yet; a later pass settles it
        find = getattr(poster, "find", None)
        if find is None:
            log.warning("digest %s: the bot stopped while posting it to %s; counting it as posted", run.key,
                        run.target.key)
            runs.record_posted(run.key, run.target, None, run.doc_ids, run.updated_at, status=UNKNOWN)
            continue
        try:
            ref = await find(run.target, run.key)
        except Exception:  # the platform cannot tell us now: leave the run pending for a later pass
            log.exception("digest %s: cannot look for its message on %s", run.key, run.target.platform)
            continue
        now = service.clock()
        if ref:
            runs.record_posted(run.key, run.target, ref, run.doc_ids, now)
        else:
            runs.record_failed(run.key, "the bot stopped before the post reached the platform",
                               now if run.schedule_id is not None else None, now)


async def run_due(service: "Service", schedule_id: int | None = None) -> list[Outcome]:
    """Post every digest that is due (one schedule's, or all): reconcile, retry, catch up, post.

    Safe to call at any time, from any number of processes: what is due comes from the database and
    `service.clock()`, and only the lease holder acts. The scheduler and start-up both call this.
    """
    runs = service.store.schedules
    lease = Lease(service.store, service.clock)
    if not lease.acquire():
        log.debug("another digest runner holds the lease")
        return []
    outcomes = []
    try:
        await reconcile(service)
        now = service.clock()
        for schedule in runs.schedules(schedule_id):
            if service.posters.get(schedule.target.platform) is None:
                continue
            period = due_period(schedule, runs.covered_until(schedule.id), now)
            if period is None:
                continue
            key = run_key(schedule.id, period.end)
            run = runs.run(key)
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
