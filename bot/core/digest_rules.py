"""Digest rules: schedules and runs as values, parsing what users type, and the pure arithmetic of
what a run covers. No I/O: the repository (bot/storage/schedules.py) stores these, the outbox acts on them.

What a run covers is a pure function of (schedule, last covered run, now): `due_period`. Every scheduled
time missed since the last covered run is folded into one run (a three-day outage gives one catch-up
digest that says it covers three days).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.core.values import Target, UserError

UTC = dt.timezone.utc
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_SETS = {"daily": range(7), "everyday": range(7), "weekdays": range(5), "weekends": range(5, 7)}

PENDING, POSTED, EMPTY, FAILED, UNKNOWN = "pending", "posted", "empty", "failed", "unknown"
COVERED = (POSTED, EMPTY, UNKNOWN)  # a run in one of these states needs no further attempt


def iso(moment: dt.datetime) -> str:
    """A moment as stored and shown in JSON: ISO 8601 in UTC, to the second."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_iso(text: str | None) -> dt.datetime | None:
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
    filter: DigestFilter | None = None

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
    return f"s{schedule_id}@{iso(end)}"


# -- filters -------------------------------------------------------------------------------------
FILTER_EXAMPLE = 'include:ai,policy exclude:crypto source:https://news.example/ topic:"AI policy" threshold:0.84'
TOPIC_THRESHOLD = 0.84  # e5 query-passage cosine of a document's best passage to match a topic (tests/story_eval.py: precision 0.90)


@dataclass(frozen=True)
class DigestFilter:
    """What a channel's digest keeps: any include word (none given: all), no exclude word, a path or
    address under one of `sources` (none given: all), and a passage close to `topic` by meaning."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    topic: str | None = None
    threshold: float = TOPIC_THRESHOLD

    def describe(self) -> str:
        parts = [f"include {', '.join(self.include)}" if self.include else "",
                 f"exclude {', '.join(self.exclude)}" if self.exclude else "",
                 f"from {', '.join(self.sources)}" if self.sources else "",
                 f"on the topic \"{self.topic}\" (threshold {self.threshold:.2f})" if self.topic else ""]
        return "; ".join(p for p in parts if p) or "everything"

    def to_json(self) -> dict:
        return {"include": list(self.include), "exclude": list(self.exclude), "sources": list(self.sources),
                "topic": self.topic, "threshold": self.threshold}

    @classmethod
    def from_json(cls, data: dict) -> "DigestFilter":
        return cls(tuple(data["include"]), tuple(data["exclude"]), tuple(data["sources"]), data["topic"],
                   data["threshold"])


def parse_filter(text: str) -> DigestFilter | None:
    """`include:a,b exclude:c source:PREFIX topic:"words" threshold:0.8` -> a filter; `clear` -> None."""
    if text.strip().lower() in ("clear", "off", "none"):
        return None
    fields: dict[str, list[str]] = {}
    for match in re.finditer(r'(\S+?):(?:"([^"]*)"|(\S+))|(\S+)', text):
        key, quoted, bare, stray = match.groups()
        if stray is not None or key.lower() not in ("include", "exclude", "source", "topic", "threshold"):
            raise UserError(f"Bad filter part {(stray or key)[:40]!r}: write {FILTER_EXAMPLE} (or clear).")
        fields.setdefault(key.lower(), []).append(quoted if quoted is not None else bare)
    words = {key: tuple(w.strip().lower() for v in fields.get(key, []) for w in v.split(",") if w.strip())
             for key in ("include", "exclude")}
    topic = " ".join(" ".join(fields.get("topic", [])).split()) or None
    try:
        threshold = float(fields["threshold"][-1]) if "threshold" in fields else TOPIC_THRESHOLD
    except ValueError:
        threshold = -1.0
    if not 0 < threshold < 1:
        raise UserError("threshold must be a number between 0 and 1, such as 0.84.")
    if "threshold" in fields and not topic:
        raise UserError("threshold applies to a topic: add topic:\"words\".")
    result = DigestFilter(words["include"], words["exclude"], tuple(fields.get("source", [])), topic, threshold)
    if result == DigestFilter():
        raise UserError(f"Empty filter: write {FILTER_EXAMPLE} (or clear).")
    if set(result.include) & set(result.exclude):
        raise UserError(f"{sorted(set(result.include) & set(result.exclude))[0]!r} is both included and excluded.")
    return result


# -- runs ------------------------------------------------------------------------------------------
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
    attempts: int = 0  # posting attempts so far (failures back off by it)
