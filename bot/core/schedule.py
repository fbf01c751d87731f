"""APScheduler wiring: one CronTrigger job per digest schedule, rebuilt from the schedules repository.

APScheduler only wakes `digest_outbox.run_due` up. What is due and what a run covers come from the database
and the service clock, so a late, coalesced, duplicate or missed wake-up never changes what is posted:
- at start-up, `run_due` reconciles interrupted runs and posts whatever was missed while the bot was down
  (one catch-up digest per schedule, however long the outage);
- a SYNC_SECONDS tick re-reads the schedules (the CLI may change them from another process),
  adds, replaces or removes jobs, and runs `run_due` for retries and anything a busy lease made us skip.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.digest_outbox import run_due
from bot.core.digest_rules import DAY_NAMES, Schedule
from bot.core.feeds import add_feed_job

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.core.service import Service

log = logging.getLogger(__name__)

SYNC_SECONDS = 60
SYNC_JOB = "digest-sync"
JOB_PREFIX = "digest:"
MISFIRE_GRACE = 12 * 3600  # a wake-up delayed by a suspended host or a busy loop still runs
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE}


def job_id(schedule_id: int) -> str:
    """Stable across restarts: the schedule's row id."""
    return f"{JOB_PREFIX}{schedule_id}"


def trigger_for(schedule: Schedule) -> CronTrigger:
    """The schedule's local wall-clock time in its own zone (09:00 Europe/Berlin stays 09:00 across DST)."""
    return CronTrigger(hour=schedule.at.hour, minute=schedule.at.minute,
                       day_of_week=",".join(DAY_NAMES[d] for d in sorted(schedule.days)), timezone=schedule.zone)


def _signature(schedule: Schedule) -> tuple:
    return schedule.at, schedule.timezone, schedule.days


class DigestScheduler:
    """An AsyncIOScheduler whose jobs mirror the stored digest schedules."""

    def __init__(self, service: "Service"):
        self.service = service
        self.scheduler = AsyncIOScheduler(timezone=dt.timezone.utc, job_defaults=JOB_DEFAULTS)
        self._signatures: dict[str, tuple] = {}

    async def start(self) -> None:
        """Start inside the running loop, build the jobs, then reconcile and catch up once."""
        self.scheduler.start()
        self.sync()
        self.scheduler.add_job(self.tick, IntervalTrigger(seconds=SYNC_SECONDS), id=SYNC_JOB, replace_existing=True)
        await run_due(self.service)

    async def tick(self) -> None:
        self.sync()
        await run_due(self.service)

    def sync(self) -> None:
        """Add, replace and remove cron jobs so that exactly the active schedules have one."""
        wanted = {job_id(s.id): s for s in self.service.store.schedules.schedules() if not s.paused}
        for job in self.scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX) and job.id not in wanted:  # other jobs (feeds) are not ours
                job.remove()
                self._signatures.pop(job.id, None)
        for jid, schedule in wanted.items():
            if self._signatures.get(jid) == _signature(schedule) and self.scheduler.get_job(jid):
                continue
            self.scheduler.add_job(run_due, trigger_for(schedule), args=(self.service, schedule.id), id=jid,
                                   name=f"digest for {schedule.target.key}", replace_existing=True)
            self._signatures[jid] = _signature(schedule)

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)


async def run(service: "Service", settings: "Settings | None" = None) -> None:
    """Run the scheduler until cancelled (what `digestbot run` starts beside the adapters):
    the digest jobs, plus the feed poller on the same AsyncIOScheduler."""
    scheduler = DigestScheduler(service)
    try:
        await scheduler.start()
        add_feed_job(scheduler.scheduler, service, (settings or service.settings).feed_minutes)
        await asyncio.Event().wait()
    finally:
        scheduler.shutdown()
