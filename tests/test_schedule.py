"""The APScheduler wiring: cron triggers in each schedule's zone, jobs mirroring the table, start-up catch-up."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from apscheduler.triggers.cron import CronTrigger

from bot.core import schedule as schedule_module
from bot.core.digest_rules import Schedule, fire_times, parse_days
from bot.core.values import Target
from bot.core.schedule import MISFIRE_GRACE, SYNC_JOB, DigestScheduler, job_id, trigger_for
from tests.test_digest import BERLIN, TEAM, UTC, add_doc, berlin, handle
from tests.test_digest import clock, make_service, platform  # noqa: F401 (fixtures)

OTHER = Target("slack", "T1", "C2")


def make_schedule(at: str, zone: str, days: str = "daily") -> Schedule:
    return Schedule(1, TEAM, dt.time.fromisoformat(at), zone, parse_days(days), dt.datetime(2024, 1, 1, tzinfo=UTC))


def cron_times(trigger: CronTrigger, start: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    times, previous, now = [], None, start
    while (fire := trigger.get_next_fire_time(previous, now)) and fire <= until:
        times.append(fire.astimezone(UTC))
        previous = now = fire
    return times


@pytest.mark.parametrize("start,offsets", [
    (dt.datetime(2024, 3, 29, tzinfo=BERLIN), ["+01:00", "+01:00", "+02:00", "+02:00"]),  # spring forward
    (dt.datetime(2024, 10, 25, tzinfo=BERLIN), ["+02:00", "+02:00", "+01:00", "+01:00"]),  # fall back
])
def test_cron_trigger_stays_at_local_time_across_dst(start, offsets):
    trigger = trigger_for(make_schedule("09:00", "Europe/Berlin"))
    times = cron_times(trigger, start, start + dt.timedelta(days=3, hours=12))
    local = [t.astimezone(BERLIN) for t in times]
    assert [(t.hour, t.minute) for t in local] == [(9, 0)] * 4
    assert [t.isoformat()[-6:] for t in local] == offsets
    assert [t.date() for t in local] == [start.date() + dt.timedelta(days=i) for i in range(4)]


@pytest.mark.parametrize("at,zone,days", [
    ("09:00", "Europe/Berlin", "weekdays"), ("02:30", "Europe/Berlin", "daily"),  # 02:30 is skipped / doubled
    ("23:45", "America/New_York", "fri-mon"), ("00:00", "Australia/Lord_Howe", "mon,wed,fri"),  # 30-minute DST
])
def test_due_computation_agrees_with_the_cron_trigger(at, zone, days):
    """APScheduler wakes us up at every instant run_due considers due, on the same local days.

    It also wakes a second time when a fall-back repeats the hour (02:30 on 27 Oct 2024 in Berlin):
    that wake-up finds nothing due, so the day still gets one digest."""
    schedule = make_schedule(at, zone, days)
    for start in (dt.datetime(2024, 3, 20, tzinfo=UTC), dt.datetime(2024, 10, 20, tzinfo=UTC),
                  dt.datetime(2024, 3, 28, tzinfo=UTC)):
        until = start + dt.timedelta(days=21)
        due, wake_ups = fire_times(schedule, start, until), cron_times(trigger_for(schedule), start, until)
        local_days = [t.astimezone(schedule.zone).date() for t in due]
        assert set(due) <= set(wake_ups) and len(local_days) == len(set(local_days))
        assert set(local_days) == {t.astimezone(schedule.zone).date() for t in wake_ups}
        assert all(t.astimezone(schedule.zone).weekday() in schedule.days for t in due)
        off_time = [t for t in due if t.astimezone(schedule.zone).time() != schedule.at]
        assert len(off_time) <= 1  # only a time skipped by spring-forward (02:30 -> 03:30 on 31 Mar 2024)


async def test_jobs_are_rebuilt_from_the_table_with_stable_ids(make_service, clock):
    service = make_service()
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin", days="weekdays")
    await handle(service, "digest schedule", time="18:30", timezone="America/New_York", target=OTHER)
    ids = [job_id(service.store.schedules.schedule_for(t).id) for t in (TEAM, OTHER)]
    first = DigestScheduler(service)
    await first.start()
    try:
        jobs = {job.id: job for job in first.scheduler.get_jobs()}
        assert set(jobs) == {*ids, SYNC_JOB}
        team = jobs[ids[0]]
        assert str(team.trigger) == str(trigger_for(service.store.schedules.schedule_for(TEAM)))
        assert team.trigger.timezone == BERLIN and team.args[1] == service.store.schedules.schedule_for(TEAM).id
        assert team.coalesce and team.misfire_grace_time == MISFIRE_GRACE >= 3600 and team.max_instances == 1

        # changes made elsewhere (the CLI is another process) reach the jobs at the next sync
        await handle(service, "digest schedule", time="07:15", timezone="Asia/Tokyo", days="mon,thu")
        await handle(service, "digest pause", target=OTHER)
        first.sync()
        jobs = {job.id: job for job in first.scheduler.get_jobs()}
        assert set(jobs) == {ids[0], SYNC_JOB}
        trigger = jobs[ids[0]].trigger
        assert trigger.timezone.key == "Asia/Tokyo" and "hour='7', minute='15'" in str(trigger)
    finally:
        first.shutdown()
    await handle(service, "digest resume", target=OTHER)
    restarted = DigestScheduler(service)  # a restart: same ids, same triggers
    await restarted.start()
    try:
        assert {job.id for job in restarted.scheduler.get_jobs()} == {*ids, SYNC_JOB}
    finally:
        restarted.shutdown()


async def test_restart_inside_the_misfire_window_posts_once(make_service, clock, platform):
    service = make_service()
    clock.now = berlin(2024, 3, 25, 8, 0)
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin")
    doc = add_doc(service, "alpha")
    clock.now = berlin(2024, 3, 25, 8, 50)
    scheduler = DigestScheduler(service)
    await scheduler.start()
    scheduler.shutdown()  # the bot stops at 08:50 and comes back at 09:20
    assert platform.messages() == []
    for restart_at in (berlin(2024, 3, 25, 9, 20), berlin(2024, 3, 25, 9, 40)):
        clock.now = restart_at
        scheduler = DigestScheduler(make_service())
        await scheduler.start()
        scheduler.shutdown()
    [post] = platform.messages()
    assert post["docs"] == [doc] and post["at"] == berlin(2024, 3, 25, 9, 20).isoformat()
    assert post["title"] == "Digest · Mon 25 Mar 2024" and "Catch-up" not in post["text"]


async def test_a_cron_job_firing_posts_the_digest(make_service, clock, platform):
    """The real AsyncIOScheduler runs the job on the loop; the clock says the digest is due."""
    service = make_service()
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin")
    scheduler = DigestScheduler(service)
    await scheduler.start()
    try:
        doc = add_doc(service, "alpha")
        clock.now = berlin(2024, 3, 25, 9, 0, 1)
        job = scheduler.scheduler.get_job(job_id(service.store.schedules.schedule_for(TEAM).id))
        job.modify(next_run_time=dt.datetime.now(UTC))  # wake it now instead of waiting for 09:00
        await asyncio.wait_for(platform.posted.wait(), timeout=10)
    finally:
        scheduler.shutdown()
    assert [m["docs"] for m in platform.messages()] == [[doc]]


async def test_run_catches_up_at_start_and_stops_when_cancelled(make_service, clock, platform):
    service = make_service()
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin")
    doc = add_doc(service, "alpha")
    clock.now = berlin(2024, 3, 27, 9, 30)  # three scheduled times missed
    task = asyncio.create_task(schedule_module.run(service))
    await asyncio.wait_for(platform.posted.wait(), timeout=10)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [post] = platform.messages()
    assert post["docs"] == [doc] and "covers **3 days**" in post["text"]
