"""The `digest` commands: preview, now, schedule, filter, pause, resume, status.

The parts they use: digest_rules (schedules and runs as values, parsing, what is due), digest_post (what
a digest says), digest_outbox (posting once, under the lease), store.schedules (the repository).
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.core.registry import Param, command
from bot.core.digest_outbox import Lease, LeaseLost, post_digest
from bot.core.digest_post import (build_items, count, digest_data, digest_reply, find_stories,
                                  local_time, new_documents)
from bot.core.digest_rules import (EMPTY, FAILED, FILTER_EXAMPLE, PENDING, POSTED, UNKNOWN, Run, Schedule, days_text,
                                   iso, next_fire, parse_days, parse_filter, parse_time, parse_timezone)
from bot.core.values import Reply, Request, Target, UserError

if TYPE_CHECKING:
    from bot.core.service import Service

SCHEDULE_EXAMPLE = "/digest schedule 09:00 Europe/Berlin weekdays"


def _require_schedule(service: "Service", target: Target) -> Schedule:
    schedule = service.store.schedules.schedule_for(target)
    if schedule is None:
        raise UserError(f"This channel has no digest schedule. Set one with {SCHEDULE_EXAMPLE}.")
    return schedule


@command("digest preview", slow=True)
async def digest_preview(service: "Service", request: Request) -> Reply:
    """Show what this channel's next digest would contain (posts nothing)."""
    target = request.target
    batch = await build_items(service, target)
    items, dropped = batch.items, batch.dropped
    stories = await service.in_lookup(find_stories, service, target, items)
    schedule = service.store.schedules.schedule_for(target)
    zone = schedule.zone if schedule else ZoneInfo(service.settings.timezone)
    data = digest_data(target, service.store.schedules.last_posted_at(target), items, stories)
    if schedule and schedule.filter:
        data["filter"] = schedule.filter.to_json()
        data["dropped"] = [{"doc_id": doc.id, "title": doc.title, "reason": reason} for doc, reason in dropped]
    if not items:
        return Reply("Nothing new for this channel since its last digest." + _drops_text(schedule, dropped),
                     title="Digest preview", data=data)
    reply = digest_reply(items, batch.remaining, zone, service.clock(), None, "preview", stories)
    reply.text += _drops_text(schedule, dropped)
    when = schedule and not schedule.paused and local_time(next_fire(schedule, service.clock()), zone)
    reply.text += f"\nNext scheduled digest: {when}." if when else "\nNo active schedule: /digest now posts it."
    reply.title, reply.data = f"Digest preview: {count(len(items))}", data
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
    if target.platform not in service.posters:
        raise UserError(f"Cannot post to {target.platform} from here: that adapter is not running.")
    lease = Lease(service.store, service.clock)
    if not lease.acquire():
        raise UserError("Another digest is being posted right now; try again in a minute.")
    try:
        key = f"now:{target.key}:{iso(service.clock())}:{uuid.uuid4().hex[:6]}"
        outcome = await post_digest(service, lease, target, key, schedule=service.store.schedules.schedule_for(target))
    except LeaseLost:
        raise UserError("Another digest runner took over; nothing was posted.") from None
    finally:
        lease.release()
    posted = outcome.status == POSTED
    data = digest_data(target, outcome.since, outcome.items if posted else [], outcome.stories if posted else [])
    if outcome.status == FAILED:
        return Reply(f"The digest could not be posted: {outcome.error}. Its documents stay new for this channel.",
                     ok=False, title="Digest not posted", data=data)
    if outcome.status == EMPTY:
        done = "posted a short note" if outcome.note else "nothing was posted"
        return Reply(f"Nothing new for this channel since its last digest; {done}.", title="Digest", data=data)
    return Reply(f"Posted the digest ({count(len(outcome.items))}) to this channel.", title="Digest", data=data)


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
    schedule = service.store.schedules.save_schedule(request.target, at, timezone, days, empty == "note",
                             f"{actor.id} ({actor.name})" if actor.name else actor.id, service.clock())
    when = local_time(next_fire(schedule, service.clock()), schedule.zone)
    return Reply(f"Digest for this channel: **{schedule.describe()}**"
                 f"{' (a short note when nothing is new)' if schedule.notify_empty else ''}.\nNext: {when}.",
                 title="Digest scheduled", data=_schedule_data(schedule, service.clock()))


def _drops_text(schedule: Schedule | None, dropped: list) -> str:
    if not schedule or not schedule.filter:
        return ""
    lines = [f"\nFilter: {schedule.filter.describe()}; it keeps the items above and drops {len(dropped)}."]
    lines += [f"• dropped _{doc.title}_: {reason}" for doc, reason in dropped[:20]]
    if len(dropped) > 20:
        lines.append(f"_and {len(dropped) - 20} more_")
    return "\n".join(lines)


@command("digest filter",
         Param("rules", f"What this channel's digest keeps, such as {FILTER_EXAMPLE}; or clear", greedy=True),
         admin=True)
async def digest_filter(service: "Service", request: Request) -> Reply:
    """Choose what this channel's digest includes: words, sources or a topic (admins)."""
    schedule = _require_schedule(service, request.target)
    digest_filter = parse_filter(request.args["rules"])
    service.store.schedules.set_filter(schedule.id, digest_filter)
    text = (f"This channel's digest keeps: **{digest_filter.describe()}**. /digest preview shows what it keeps and "
            "drops." if digest_filter else "Filter cleared: this channel's digest gets every new document.")
    return Reply(text, title="Digest filter", data={"target": request.target.key,
                                                    "filter": digest_filter and digest_filter.to_json()})


@command("digest pause", admin=True)
async def digest_pause(service: "Service", request: Request) -> Reply:
    """Pause this channel's scheduled digests."""
    schedule = _require_schedule(service, request.target)
    service.store.schedules.set_paused(schedule.id, True, service.clock())
    return Reply(f"Digests paused ({schedule.describe()}). /digest resume restarts them.", title="Digest paused",
                 data=_schedule_data(service.store.schedules.schedule_for(request.target), service.clock()))


@command("digest resume", admin=True)
async def digest_resume(service: "Service", request: Request) -> Reply:
    """Resume this channel's scheduled digests (no catch-up for the paused time)."""
    schedule = _require_schedule(service, request.target)
    service.store.schedules.set_paused(schedule.id, False, service.clock())
    schedule = service.store.schedules.schedule_for(request.target)
    when = local_time(next_fire(schedule, service.clock()), schedule.zone)
    return Reply(f"Digests resumed ({schedule.describe()}). Next: {when}.", title="Digest resumed",
                 data=_schedule_data(schedule, service.clock()))


@command("digest status")
async def digest_status(service: "Service", request: Request) -> Reply:
    """Show this channel's digest schedule, its last and next run, and what is waiting."""
    target, now = request.target, service.clock()
    schedule = service.store.schedules.schedule_for(target)
    zone = schedule.zone if schedule else ZoneInfo(service.settings.timezone)
    run = service.store.schedules.last_run(target)
    pending = len(new_documents(service.store, target))
    lines = [f"**Schedule:** {schedule.describe() if schedule else f'none (admins: {SCHEDULE_EXAMPLE})'}"]
    if schedule:
        lines.append(f"**Next digest:** {'paused' if schedule.paused else local_time(next_fire(schedule, now), zone)}")
    lines.append(f"**Last digest:** {_run_text(run, zone) if run else 'none yet'}")
    lines.append(f"**Waiting:** {count(pending)}")
    data = {"target": target.key, "schedule": schedule and _schedule_data(schedule, now), "pending_items": pending,
            "last_run": run and {"key": run.key, "status": run.status, "items": len(run.doc_ids),
                                 "message_ref": run.message_ref, "error": run.error,
                                 "retry_at": run.retry_at and iso(run.retry_at), "updated_at": iso(run.updated_at)}}
    return Reply("\n".join(lines), title="Digest status", data=data)


def _run_text(run: Run, zone: ZoneInfo) -> str:
    when = local_time(run.updated_at, zone)
    if run.status == POSTED:
        return f"{when}: posted {len(run.doc_ids)} document" + ("" if len(run.doc_ids) == 1 else "s")
    if run.status == EMPTY:
        return f"{when}: nothing new" + (" (note posted)" if run.posted_at else ", nothing posted")
    if run.status == UNKNOWN:
        return (f"{when}: outcome unknown, the bot stopped while posting; its {len(run.doc_ids)} "
                "documents count as posted")
    if run.status == PENDING:
        return f"{when}: being posted"
    retry = f"retrying {local_time(run.retry_at, zone)}" if run.retry_at else "will try again at the next scheduled time"
    return f"{when}: failed ({run.error}); {retry}"


def _schedule_data(schedule: Schedule, now: dt.datetime) -> dict:
    return {"id": schedule.id, "target": schedule.target.key, "time": f"{schedule.at:%H:%M}",
            "timezone": schedule.timezone, "days": days_text(schedule.days), "paused": schedule.paused,
            "notify_empty": schedule.notify_empty, "created_by": schedule.created_by,
            "filter": schedule.filter and schedule.filter.to_json(),
            "next_run": None if schedule.paused else iso(next_fire(schedule, now))}
