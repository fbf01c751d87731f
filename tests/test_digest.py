"""Digests: what gets posted, when, and exactly once, with time driven by a controllable clock.

Most tests fill the summary cache for the documents they add (`add_doc`): their subject is scheduling
and bookkeeping, not summarizing. `test_preview_and_now_with_real_summaries` runs the real summarizer.
Crashes are real: a child process posts and dies with os._exit, leaving its lease and a pending run.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.cli import main as cli_main
from bot.config import Settings
from bot.adapters.console import ConsolePoster
from bot.core.digest_outbox import run_due
from bot.core.digest_post import brief
from bot.core.digest_rules import parse_days, parse_time, parse_timezone
from bot.core.ingest import build_document
from bot.core.values import Actor, PostError, Reply, Request, Target, UserError
from bot.core.service import Service
from bot.core.store import Store
from summarizer import Models, Summary
from summarizer.extractive import KeyPoint

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
TEAM = Target("slack", "T1", "C1")
ADMIN = Actor("U1", "Ada", is_admin=True)
MEMBER = Actor("U2", "Bob")
CRASH_EXIT = 70


def berlin(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN).astimezone(UTC)


class Clock:
    """A settable clock: `service.clock` in every test here."""

    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


class Platform:
    """A fake chat platform: posts go to a JSON-lines file, so what a crashed process posted survives it.

    `crash` ("before"/"after" the platform accepts the message) kills the process; `errors` are raised
    by the next posts, one each."""

    def __init__(self, path: Path, clock, crash: str | None = None, errors: list[Exception] | None = None):
        self.path, self.clock, self.crash, self.errors = path, clock, crash, list(errors or [])
        self.posted = asyncio.Event()  # set by every post of this process

    async def post(self, target: Target, reply: Reply) -> str:
        if self.crash == "before":
            os._exit(CRASH_EXIT)
        if self.errors:
            raise self.errors.pop(0)
        ref = f"m{len(self.messages()) + 1}"
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps({"ref": ref, "target": target.key, "run": reply.data["run"], "title": reply.title,
                                   "text": reply.text, "docs": [i.doc_id for i in reply.items],
                                   "at": self.clock().isoformat()}) + "\n")
        if self.crash == "after":
            os._exit(CRASH_EXIT)
        self.posted.set()
        return ref

    def messages(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines()]


class SearchablePlatform(Platform):
    """A platform the bot can ask whether a run's message is already there (like channel history)."""

    async def find(self, target: Target, run_key: str) -> str | None:
        return next((m["ref"] for m in self.messages() if m["run"] == run_key and m["target"] == target.key), None)


@pytest.fixture
def clock() -> Clock:
    return Clock(berlin(2024, 3, 25, 7, 0))


@pytest.fixture
def platform(tmp_path, clock) -> SearchablePlatform:
    return SearchablePlatform(tmp_path / "slack.jsonl", clock)


@pytest.fixture
def make_service(settings, models, clock, platform):
    """`make_service()` starts a bot process on the test database; calling it again is a restart."""
    services: list[Service] = []

    def make(poster=None) -> Service:
        service = Service(settings, Store.open(settings.db_path), models, clock=clock)
        service.register_poster("slack", poster or platform)
        services.append(service)
        return service

    yield make
    for service in services:
        service.close()


def add_doc(service: Service, name: str, published: str | None = None) -> str:
    """Index a document and put its summary in the cache (see the module docstring)."""
    text = f"{name} shipped a new release today. It fixes many bugs. It adds three features for {name} users."
    doc, body, passages = build_document(text, path=f"news/{name}.txt", title=name.title(), published=published)
    service.store.replace_document(doc, body, passages)
    summary = Summary(f"{name} shipped a release.", (KeyPoint("The release fixes bugs.", "It fixes many bugs."),),
                      "English", service.models.summarizer_id)
    service.store.save_summary(doc.content_hash, summary.model_id, service.settings.language, summary.to_json(),
                               summary.language)
    return doc.id


async def handle(service: Service, command: str, actor: Actor = ADMIN, target: Target = TEAM, **args) -> Reply:
    return await service.handle(Request(command, args, actor, target))


def schedule_row(service: Service) -> dict | None:
    rows = list(service.store.db.query("SELECT * FROM digest_schedules"))
    return rows[0] if rows else None


# -- parsing -------------------------------------------------------------------------------------
def test_parse_time_days_and_timezone():
    assert parse_time("09:00") == dt.time(9) and parse_time("7:30pm") == dt.time(19, 30)
    assert parse_time("9am") == dt.time(9) and parse_time("12am") == dt.time(0)
    assert parse_time("23:59") == dt.time(23, 59)
    for bad in ("25:00", "9", "09:60", "13pm", "noon", "", "9:5"):
        with pytest.raises(UserError, match="Bad time"):
            parse_time(bad)
    assert parse_days("weekdays") == parse_days("mon-fri") == frozenset(range(5))
    assert parse_days("daily") == frozenset(range(7))
    assert parse_days("mon,wed,fri") == frozenset({0, 2, 4})
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    assert parse_days("Tuesday, thu") == frozenset({1, 3})
    for bad, message in (("", "No days"), (" , ", "No days"), ("funday", "Unknown day"), ("mon-xyz", "Unknown day")):
        with pytest.raises(UserError, match=message):
            parse_days(bad)
    assert parse_timezone("europe/berlin") == "Europe/Berlin"
    for bad in ("Europe/Berln", "Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(UserError, match="Unknown timezone"):
            parse_timezone(bad)


async def test_bad_schedule_input_is_refused_and_changes_nothing(make_service):
    service = make_service()
    ok = await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin", days="weekdays")
    assert ok.ok and "09:00 Europe/Berlin, weekdays" in ok.text
    before = schedule_row(service)
    for args, message in (({"time": "24:30"}, "Bad time"),
                          ({"time": "09:00", "timezone": "Europe/Berln"}, "Unknown timezone"),
                          ({"time": "09:00", "timezone": "Europe/Berlin", "days": ""}, "No days"),
                          ({"time": "09:00", "days": "someday"}, "Unknown day"),
                          ({"time": "09:00", "empty": "maybe"}, "skip"),
                          ({"time": "09:00", "when": "now"}, "takes no when")):
        reply = await handle(service, "digest schedule", **args)
        assert not reply.ok and message in reply.text, (args, reply.text)
        assert schedule_row(service) == before
    # the days may follow the time directly: `/digest schedule 10:15 mon,wed`
    reply = await handle(service, "digest schedule", time="10:15", timezone="mon,wed")
    assert reply.ok and "10:15 UTC, mon,wed" in reply.text


async def test_non_admins_cannot_change_schedules(make_service):
    service = make_service()
    for command, args in (("digest schedule", {"time": "09:00"}), ("digest pause", {}), ("digest resume", {})):
        reply = await handle(service, command, MEMBER, **args)
        assert not reply.ok and "admins only" in reply.text
    assert schedule_row(service) is None
    assert (await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin")).ok
    before = schedule_row(service)
    assert not (await handle(service, "digest pause", MEMBER)).ok
    assert schedule_row(service) == before and not before["paused"]
    status = await handle(service, "digest status", MEMBER)  # reading is for everyone
    assert status.ok and "09:00 Europe/Berlin, daily" in status.text
    assert before["created_by"] == "U1 (Ada)"


# -- when digests are posted -----------------------------------------------------------------------
async def test_daily_digest_stays_at_local_time_across_dst(make_service, clock, platform):
    service = make_service()
    clock.now = berlin(2024, 3, 28, 12, 0)
    assert (await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin", days="daily")).ok
    expected = []
    for day in (29, 30, 31):  # Europe/Berlin moves from UTC+1 to UTC+2 on 31 March 2024
        clock.now = berlin(2024, 3, day, 8, 0)
        doc = add_doc(service, f"release{day}")
        clock.now = berlin(2024, 3, day, 8, 59)
        assert await run_due(service) == []
        clock.now = berlin(2024, 3, day, 9, 0)
        [outcome] = await run_due(service)
        assert outcome.status == "posted"
        clock.now = berlin(2024, 3, day, 9, 30)
        assert await run_due(service) == []
        expected.append((doc, berlin(2024, 3, day, 9, 0)))
    posts = platform.messages()
    assert [(m["docs"], m["at"]) for m in posts] == [([doc], at.isoformat()) for doc, at in expected]
    assert [dt.datetime.fromisoformat(m["at"]).hour for m in posts] == [8, 8, 7]  # UTC: same local 09:00
    assert [m["title"] for m in posts] == ["Digest · Fri 29 Mar 2024", "Digest · Sat 30 Mar 2024",
                                           "Digest · Sun 31 Mar 2024"]
    assert all("Catch-up" not in m["text"] for m in posts)


async def test_three_day_outage_posts_one_catch_up_digest(make_service, clock, platform):
    service = make_service()
    clock.now = berlin(2024, 4, 1, 8, 0)
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin")
    first = add_doc(service, "alpha")
    clock.now = berlin(2024, 4, 1, 9, 0, 5)
    await run_due(service)
    service.close()  # the bot goes down for three days; documents keep arriving (e.g. the CLI indexes them)
    indexer = make_service()
    during = [add_doc(indexer, "beta", "2024-04-02"), add_doc(indexer, "gamma", "2024-04-03"),
              add_doc(indexer, "delta", "2024-04-04")]
    clock.now = berlin(2024, 4, 4, 11, 30)
    restarted = make_service()
    [outcome] = await run_due(restarted)
    assert await run_due(restarted) == []
    posts = platform.messages()
    assert [m["docs"] for m in posts] == [[first], during[::-1]]  # newest first
    catch_up = posts[1]
    assert "covers **3 days** (Mon 1 Apr 2024 to Thu 4 Apr 2024), 3 scheduled digests in one" in catch_up["text"]
    assert catch_up["title"] == "Digest · Thu 4 Apr 2024" and "**3 new documents**" in catch_up["text"]
    # the next day is an ordinary digest again
    new = add_doc(restarted, "epsilon")
    clock.now = berlin(2024, 4, 5, 9, 0)
    await run_due(restarted)
    assert platform.messages()[2]["docs"] == [new] and "Catch-up" not in platform.messages()[2]["text"]


async def test_nothing_new_posts_nothing_unless_a_note_was_asked_for(make_service, clock, platform):
    service = make_service()
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin")
    clock.now = berlin(2024, 3, 25, 9, 1)
    [outcome] = await run_due(service)
    assert outcome.status == "empty" and platform.messages() == []
    status = await handle(service, "digest status")
    assert "nothing new, nothing posted" in status.text and status.data["last_run"]["status"] == "empty"
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin", empty="note")
    clock.now = berlin(2024, 3, 26, 9, 1)
    await run_due(service)
    [note] = platform.messages()
    assert note["docs"] == [] and "Nothing new since the last digest." in note["text"]
    assert await run_due(service) == []


async def test_pause_and_resume(make_service, clock, platform):
    service = make_service()
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin")
    doc = add_doc(service, "alpha")
    clock.now = berlin(2024, 3, 25, 8, 0)
    assert (await handle(service, "digest pause")).ok
    assert "paused" in (await handle(service, "digest status")).text
    for day in (25, 26):
        clock.now = berlin(2024, 3, day, 9, 5)
        assert await run_due(service) == []
    clock.now = berlin(2024, 3, 26, 12, 0)
    resumed = await handle(service, "digest resume")
    assert resumed.ok and "Next: Wed 27 Mar 2024 09:00 CET" in resumed.text
    assert await run_due(service) == [] and platform.messages() == []  # no catch-up for the pause
    clock.now = berlin(2024, 3, 27, 9, 0)
    await run_due(service)
    [post] = platform.messages()
    assert post["docs"] == [doc] and "Catch-up" not in post["text"]


async def test_post_errors_are_recorded_retried_and_shown(make_service, clock, platform):
    platform.errors = [PostError("Slack rate limit", retry_after=600),
                       PostError("Slack refused the message: channel_not_found", permanent=True)]
    service = make_service()
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin")
    first = add_doc(service, "alpha")
    clock.now = berlin(2024, 3, 25, 9, 0)
    [failed] = await run_due(service)
    assert failed.status == "failed" and platform.messages() == []
    status = await handle(service, "digest status")
    assert "failed (Slack rate limit); retrying Mon 25 Mar 2024 09:10 CET" in status.text
    clock.now = berlin(2024, 3, 25, 9, 9)
    assert await run_due(service) == []  # still backing off (Retry-After: 600 s)
    clock.now = berlin(2024, 3, 25, 9, 10)
    [outcome] = await run_due(service)  # retried: refused for good this time
    assert outcome.status == "failed" and platform.messages() == []
    assert "will try again at the next scheduled time" in (await handle(service, "digest status")).text
    clock.now = berlin(2024, 3, 25, 18, 0)
    assert await run_due(service) == []  # a permanent refusal is not hammered
    second = add_doc(service, "beta", "2099-01-01")
    clock.now = berlin(2024, 3, 26, 9, 0)
    await run_due(service)
    [post] = platform.messages()
    assert post["docs"] == [second, first] and "covers **2 days**" in post["text"]
    run = service.store.schedules.run(post["run"])
    assert run.status == "posted" and run.message_ref == "m1"


async def test_a_member_gets_the_preview_and_the_scheduled_digest_keeps_its_documents(make_service, clock, platform):
    """Posting spends what is pending for the channel: admins only. A member's `digest now` is a preview."""
    service = make_service()
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin")
    docs = [add_doc(service, "alpha", "2024-03-01"), add_doc(service, "beta", "2024-03-02")]
    runs_before = service.store.schedules.runs()
    member = await handle(service, "digest now", MEMBER)
    assert member.ok and "admins" in member.text and "nothing was posted" in member.text.lower()
    assert sorted(i["doc_id"] for i in member.data["items"]) == sorted(docs)  # the preview shows what is pending
    assert platform.messages() == [] and service.store.schedules.runs() == runs_before
    clock.now = berlin(2024, 3, 25, 9, 0)
    [outcome] = await run_due(service)
    assert outcome.status == "posted" and sorted(platform.messages()[0]["docs"]) == sorted(docs)


async def test_a_document_is_never_posted_twice_to_a_channel(make_service, clock, platform):
    """Two channels each get every document once; `digest now` and scheduled runs share the record."""
    service = make_service()
    other = Target("slack", "T1", "C2")
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin")
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin", target=other)
    a = add_doc(service, "alpha", "2024-03-01")
    now = await handle(service, "digest now")
    assert now.ok and [i["doc_id"] for i in now.data["items"]] == [a]
    again = await handle(service, "digest now")
    assert again.ok and again.data["items"] == [] and "nothing was posted" in again.text
    b = add_doc(service, "beta", "2024-03-02")
    clock.now = berlin(2024, 3, 25, 9, 0)
    await run_due(service)
    posts = sorted((m["target"], m["docs"]) for m in platform.messages())
    assert posts == [(TEAM.key, [a]), (TEAM.key, [b]), (other.key, [b, a])]


# -- crashes and concurrent processes ---------------------------------------------------------------
def child_main(db: str, platform_path: str, now: str, crash: str) -> None:
    """A bot process (run in a child): one `run_due` at a fixed time, crashing where told."""
    settings = dataclasses.replace(Settings.from_env({}), db_path=db)
    fixed = dt.datetime.fromisoformat(now)
    service = Service(settings, Store.open(db), Models.from_settings(settings), clock=lambda: fixed)
    service.register_poster("slack", Platform(Path(platform_path), service.clock, crash=crash or None))
    asyncio.run(run_due(service))


def spawn(settings: Settings, platform: Platform, now: dt.datetime, crash: str = "") -> subprocess.Popen:
    code = "import sys; from tests.test_digest import child_main; child_main(*sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, settings.db_path, str(platform.path), now.isoformat(), crash],
                            cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.mark.reliability
@pytest.mark.parametrize("searchable", [True, False], ids=["platform-searchable", "platform-blind"])
@pytest.mark.parametrize("crash", ["before", "after"])
async def test_crash_before_or_after_posting(make_service, settings, clock, tmp_path, crash, searchable):
    platform = (SearchablePlatform if searchable else Platform)(tmp_path / "slack.jsonl", clock)
    service = make_service(platform)
    await handle(service, "digest schedule", time="09:00", timezone="Europe/Berlin")
    docs = [add_doc(service, "alpha"), add_doc(service, "beta")]
    child = spawn(settings, platform, berlin(2024, 3, 25, 9, 0, 10), crash)
    assert child.wait(timeout=60) == CRASH_EXIT
    [run] = service.store.schedules.runs()
    assert run.status == "pending" and sorted(run.doc_ids) == sorted(docs)
    assert len(platform.messages()) == (1 if crash == "after" else 0)

    service.close()
    clock.now = berlin(2024, 3, 25, 9, 2)
    restarted = make_service(platform)
    assert await run_due(restarted) == []  # the dead process's lease has not expired yet
    assert restarted.store.schedules.run(run.key).status == "pending"
    clock.now = berlin(2024, 3, 25, 9, 6)
    await run_due(restarted)
    settled = restarted.store.schedules.run(run.key)
    posts = platform.messages()
    if searchable:  # asked the platform: posted exactly once either way
        assert settled.status == "posted" and [m["run"] for m in posts] == [run.key]
        assert settled.message_ref == "m1" and sorted(posts[0]["docs"]) == sorted(docs)
    else:  # cannot ask: at most once (documented policy); the run says its outcome is unknown
        assert settled.status == "unknown" and len(posts) == (1 if crash == "after" else 0)
        status = await handle(restarted, "digest status")
        assert "outcome unknown, the bot stopped while posting; its 2 documents count as posted" in status.text
    # whatever happened, those documents never come again; new ones still do
    clock.now = berlin(2024, 3, 26, 9, 0)
    await run_due(restarted)
    assert len(platform.messages()) == len(posts)
    new = add_doc(restarted, "gamma")
    clock.now = berlin(2024, 3, 27, 9, 0)
    await run_due(restarted)
    assert platform.messages()[-1]["docs"] == [new] and len(platform.messages()) == len(posts) + 1


@pytest.mark.reliability
async def test_two_processes_on_one_database_post_once(make_service, settings, clock, platform, tmp_path):
    class GatedPlatform(SearchablePlatform):
        """Holds process A inside its post until process B has had its go."""

        def __init__(self, *args):
            super().__init__(*args)
            self.entered, self.gate = asyncio.Event(), asyncio.Event()

        async def post(self, target, reply):
            self.entered.set()
            await self.gate.wait()
            return await super().post(target, reply)

    gated = GatedPlatform(platform.path, clock)
    a, b = make_service(gated), make_service(platform)
    await handle(a, "digest schedule", time="09:00", timezone="Europe/Berlin")
    doc = add_doc(a, "alpha")
    clock.now = berlin(2024, 3, 25, 9, 0)
    task = asyncio.create_task(run_due(a))
    await asyncio.wait_for(gated.entered.wait(), timeout=10)
    assert await run_due(b) == []  # A holds the lease while it posts
    busy = await handle(b, "digest now")
    assert not busy.ok and "Another digest is being posted" in busy.text
    gated.gate.set()
    [outcome] = await asyncio.wait_for(task, timeout=10)
    assert outcome.status == "posted" and await run_due(b) == []
    assert [m["docs"] for m in platform.messages()] == [[doc]]

    # and two real processes racing for the next day's digest
    second = add_doc(a, "beta")
    a.close()
    b.close()
    children = [spawn(settings, platform, berlin(2024, 3, 26, 9, 0, 1)) for _ in range(2)]
    assert [child.wait(timeout=60) for child in children] == [0, 0]
    assert [m["docs"] for m in platform.messages()] == [[doc], [second]]


# -- preview, now and the CLI with the real summarizer -----------------------------------------------
def test_preview_and_now_with_real_summaries(seeded_service, settings, monkeypatch, capsys):
    """Sync test: the CLI part runs its own event loop."""
    stream = io.StringIO()
    seeded_service.register_poster("console", ConsolePoster(stream))
    data = asyncio.run(_preview_and_now(seeded_service, stream))

    # the CLI on the same database: another console target still gets everything, once
    monkeypatch.setenv("DIGESTBOT_DB", settings.db_path)
    assert cli_main(["digest", "preview", "--target", "console:ops", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == data["items"]
    assert cli_main(["digest", "now", "--target", "console:ops", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "--- digest for console:local:ops ---" in out + err and "What Ilya Saw" in out + err
    result = json.loads(out[out.index('{\n  "target"'):])  # the post is printed first
    assert result["target"] == "console:local:ops" and result["items"] == data["items"]
    assert cli_main(["digest", "now", "--target", "console:ops", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["items"] == [] and again["since"]


async def _preview_and_now(service: Service, stream: io.StringIO) -> dict:
    target = Target.parse("console:team")
    preview = await service.handle(Request("digest preview", {}, MEMBER, target))
    assert preview.ok and stream.getvalue() == ""  # posts nothing
    data = preview.data
    assert data["target"] == "console:local:team" and data["since"] is None and len(data["items"]) == 5
    assert all(set(item) == {"doc_id", "title", "path", "url", "summary"} for item in data["items"])
    for item in data["items"]:  # one line each: the overview; the key points stay behind /summary
        summary = await service.summarize(service.store.document(item["doc_id"]))
        assert item["summary"] == brief(summary.overview) and "\n" not in item["summary"] and summary.points
        assert summary.overview.startswith(item["summary"].rstrip("…"))
    assert [i.doc_id for i in preview.items] == [d.id for d in service.store.documents()]  # newest first
    started = time.perf_counter()
    await service.handle(Request("digest preview", {}, MEMBER, target))
    assert time.perf_counter() - started < 0.5  # summaries come from the cache

    now = await service.handle(Request("digest now", {}, ADMIN, target))
    assert now.ok and now.data["items"] == data["items"] and "Posted the digest (5 new documents)" in now.text
    posted = stream.getvalue()
    assert all(item["title"] in posted for item in data["items"]) and "**5 new documents**" in posted
    again = await service.handle(Request("digest now", {}, ADMIN, target))
    assert again.data["items"] == [] and stream.getvalue() == posted
    assert again.data["since"] is not None
    return data
