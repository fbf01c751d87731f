"""Crashes, faults and rate limits: the database stays consistent and every digest is posted once.

Covered elsewhere, not repeated here:
  * a bot process dying (os._exit) just before / after its poster runs, on a platform that can be
    searched and one that cannot, and two processes racing for one digest: tests/test_digest.py;
  * SlackPoster waiting out a 429's Retry-After between the messages of one post: tests/test_slack.py;
    DiscordPoster with short and long 429s, and a scheduled Discord run retried after Retry-After:
    tests/test_discord.py.
Here: SIGKILL from outside during indexing and around a real Slack post, a full or read-only
database, a scheduled Slack digest meeting 429s, and a Discord gateway drop while a digest is due.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlite_utils
from aiohttp import web

from bot import cli
from bot.adapters.console import ConsolePoster, respond
from bot.adapters.slack_app import build_app
from bot.adapters.slack_poster import SlackPoster
from bot.config import Settings
from bot.core.digest_outbox import run_due
from bot.core.ingest import build_document, read_file
from bot.core.values import Actor, Request, Target
from bot.core.schedule import DigestScheduler, job_id
from bot.core.service import Service, open_service
from bot.core.store import Store
from summarizer import Models
from tests.fake_discord import FakeDiscord
from tests.fake_slack import TEAM_ID, FakeSlack
from tests.local_web import web_server  # noqa: F401 - fixture
from tests.test_digest import Clock, add_doc, berlin
from tests.test_discord import discord_settings, running
from tests.test_hostile import fingerprint
from tests.test_slack import RATE_LIMITED

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc
ADMIN = Actor("U0ADMIN", "Ada", is_admin=True)
SLACK_CHANNEL = Target("slack", TEAM_ID, "C0DIGEST")
CORPUS_FILES = 600  # enough that the indexer is still busy when the test kills it
NO_PAGE_LIMIT = 1073741823


# -- helpers -------------------------------------------------------------------------------------
def write_corpus(folder: Path, count: int) -> None:
    """`count` Markdown notes of six paragraphs (six passages each), every note different."""
    folder.mkdir()
    words = "index passage crash journal writer reader digest summary offsite harbour lantern".split()
    for i in range(count):
        paragraphs = [" ".join(words[(i + p + k) % len(words)] for k in range(120)) for p in range(6)]
        (folder / f"note{i:04d}.md").write_text(f"# Note {i}\n\n" + "\n\n".join(paragraphs) + f"\n\nmarker{i:04d}\n")


def long_text(paragraphs: int = 30) -> str:
    return "\n\n".join(f"Paragraph {p} about harbour lanterns and tide tables. " * 12 for p in range(paragraphs))


def count_documents(db_path: str) -> int:
    """What a reader sees now (0 until the writer has created the database and its tables)."""
    if not os.path.exists(db_path):
        return 0
    try:
        with contextlib.closing(sqlite3.connect(db_path, timeout=1)) as conn:
            return conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def assert_consistent(db_path: str) -> int:
    """What no crash or failed write may break; returns the number of documents."""
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as conn:
        rows = lambda sql: conn.execute(sql).fetchall()  # noqa: E731
        assert rows("PRAGMA integrity_check") == [("ok",)]
        # FTS5 compares its index with the passages table and raises if they disagree
        conn.execute("INSERT INTO passages_fts(passages_fts, rank) VALUES('integrity-check', 1)")
        assert rows("SELECT id FROM documents d WHERE NOT EXISTS (SELECT 1 FROM passages WHERE doc_id = d.id)") == []
        assert rows("SELECT p.id FROM passages p LEFT JOIN documents d ON d.id = p.doc_id WHERE d.id IS NULL") == []
        assert rows("SELECT doc_id FROM passages GROUP BY doc_id HAVING max(ordinal) != count(*) - 1") == []
        assert rows('SELECT p.id FROM passages p JOIN documents d ON d.id = p.doc_id '
                    'WHERE substr(d.text, p.start + 1, p."end" - p.start) != p.text') == []
        return rows("SELECT count(*) FROM documents")[0][0]


def fill_up(store: Store) -> None:
    """Let the file grow by no further page: SQLite then fails writes with SQLITE_FULL, as on a full disk."""
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")


def one_line_error(reply) -> str:
    assert not reply.ok and reply.text.strip() and "\n" not in reply.text, reply.text
    return reply.text


# -- kill -9 while indexing ------------------------------------------------------------------------
def test_kill_9_while_indexing_leaves_a_consistent_database_and_the_next_run_completes(settings, tmp_path):
    folder = tmp_path / "notes"
    write_corpus(folder, CORPUS_FILES)
    env = {**os.environ, "DIGESTBOT_DB": settings.db_path, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "bot", "index", str(folder), "--no-embed"]
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while count_documents(settings.db_path) < 10:  # it has committed some documents: now kill it
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the indexer committed nothing within 60 s"
            time.sleep(0.02)
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    indexed = assert_consistent(settings.db_path)
    assert 10 <= indexed < CORPUS_FILES  # killed mid-way
    store = Store.open(settings.db_path)
    try:
        for doc in store.documents():  # each document has all of its passages, not some
            body, _ = read_file(Path(doc.path), {})
            assert len(store.passages(doc.id)) == len(build_document(body, path=doc.path)[2])
    finally:
        store.close()

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.startswith(
        f"Indexed: {CORPUS_FILES - indexed} added, 0 updated, {indexed} unchanged, 0 removed")
    assert assert_consistent(settings.db_path) == CORPUS_FILES


# -- kill -9 around a real Slack post ----------------------------------------------------------------
class HoldingSlack(FakeSlack):
    """Holds the first chat.postMessage `before` accepting the message, or `after` accepting it but
    before answering: the bot is left inside its post, for the test to kill it there."""

    def __init__(self, hold: str):
        super().__init__()
        self.hold = hold
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def _api(self, request: web.Request) -> web.Response:
        first = request.match_info["method"] == "chat.postMessage" and not self.holding.is_set()
        if first and self.hold == "before":
            self.holding.set()
            await self.release.wait()
            return web.json_response({"ok": False, "error": "internal_error"}, status=503)
        response = await super()._api(request)
        if first:
            self.holding.set()
            await self.release.wait()
        return response

    async def __aexit__(self, *exc) -> None:
        self.release.set()
        await super().__aexit__(*exc)


def slack_settings(settings: Settings, slack_api_url: str, token: str) -> Settings:
    return dataclasses.replace(settings, slack_bot_token=token, slack_api_url=slack_api_url)


def slack_child(db: str, api_url: str, token: str, now: str) -> None:
    """A bot process (run in a child): one `run_due` at a fixed time through the real SlackPoster."""
    settings = slack_settings(dataclasses.replace(Settings.from_env({}), db_path=db), api_url, token)
    fixed = dt.datetime.fromisoformat(now)
    service = Service(settings, Store.open(db), Models.from_settings(settings), clock=lambda: fixed)

    async def main() -> None:
        service.register_poster("slack", SlackPoster(build_app(settings)))
        await run_due(service)

    asyncio.run(main())


@pytest.mark.parametrize("crash", ["before", "after"], ids=["before-accepted", "after-accepted"])
async def test_kill_9_around_a_slack_digest_post_leaves_exactly_one_post(settings, models, crash):
    clock = Clock(berlin(2024, 3, 25, 7, 0))
    async with HoldingSlack(crash) as slack:
        config = slack_settings(settings, slack.api_url, slack.bot_token)
        service = Service(config, Store.open(settings.db_path), models, clock=clock)
        restarted = None
        try:
            schedule = {"time": "09:00", "timezone": "Europe/Berlin"}
            assert (await service.handle(Request("digest schedule", schedule, ADMIN, SLACK_CHANNEL))).ok
            docs = sorted([add_doc(service, "alpha"), add_doc(service, "beta")])
            code = "import sys; from tests.test_reliability import slack_child; slack_child(*sys.argv[1:])"
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, settings.db_path, slack.api_url, slack.bot_token,
                berlin(2024, 3, 25, 9, 0, 10).isoformat(), cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            holding, exited = asyncio.ensure_future(slack.holding.wait()), asyncio.ensure_future(child.wait())
            try:
                await asyncio.wait({holding, exited}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
                assert holding.done(), f"the bot process exited ({child.returncode}) or hung before posting"
            finally:
                holding.cancel()
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await asyncio.wait_for(exited, 30)
            assert child.returncode == -signal.SIGKILL
            [run] = service.store.schedules.runs("pending")
            assert sorted(run.doc_ids) == docs
            assert len(slack.messages) == (1 if crash == "after" else 0)

            clock.now = berlin(2024, 3, 25, 9, 6)  # restarted once the dead process's lease ran out
            restarted = Service(config, Store.open(settings.db_path), models, clock=clock)
            restarted.register_poster("slack", SlackPoster(build_app(config)))
            await run_due(restarted)  # asks Slack's history whether the run's message is there
            [message] = slack.messages
            settled = restarted.store.schedules.run(run.key)
            assert message["metadata"]["event_payload"]["run"] == run.key
            assert settled.status == "posted" and settled.message_ref == message["ts"]
            clock.now = berlin(2024, 3, 26, 9, 0)
            await run_due(restarted)  # the next day: those documents are never posted again
            assert len(slack.messages) == 1
        finally:
            service.close()
            if restarted:
                restarted.close()


# -- a full disk, a read-only database -------------------------------------------------------------
async def test_full_disk_add_is_one_line_and_leaves_the_index_as_it_was(service, web_server, settings):
    service.settings = dataclasses.replace(service.settings, allow_private_urls=True)  # served on 127.0.0.1
    service.store.replace_document(*build_document(long_text(3), path="notes/first.md"))
    url = web_server.page("/tides.txt", long_text(), content_type="text/plain; charset=utf-8")
    before = fingerprint(service.store)
    fill_up(service.store)
    error = one_line_error(await respond(service, f"/add {url}"))
    assert "database or disk is full" in error
    assert fingerprint(service.store) == before
    assert assert_consistent(settings.db_path) == 1

    service.store.db.execute(f"PRAGMA max_page_count = {NO_PAGE_LIMIT}")  # space freed: the same add works
    added = await respond(service, f"/add {url}")
    assert added.ok and added.text.startswith("Added"), added.text
    assert assert_consistent(settings.db_path) == 2


def test_full_disk_index_is_one_error_line_and_the_next_run_completes(settings, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "notes"
    write_corpus(folder, 5)
    monkeypatch.setenv("DIGESTBOT_DB", settings.db_path)

    def full_disk_service(config: Settings) -> Service:
        service = open_service(config)
        fill_up(service.store)
        return service

    monkeypatch.setattr(cli, "open_service", full_disk_service)
    assert cli.main(["index", str(folder), "--no-embed"]) == 1
    out, err = capsys.readouterr()
    assert [line for line in err.splitlines() if line.strip()] == [
        "error: database write failed: database or disk is full"]
    assert "Indexed" not in out and assert_consistent(settings.db_path) == 0

    monkeypatch.setattr(cli, "open_service", open_service)
    assert cli.main(["index", str(folder), "--no-embed"]) == 0
    assert capsys.readouterr().out.startswith("Indexed: 5 added")
    assert assert_consistent(settings.db_path) == 5


async def test_read_only_database_refuses_writes_in_one_line_and_still_answers_lookups(
        seeded_service, settings, models, web_server):
    """Opened with `mode=ro`: tests may run as root, for whom chmod does not stop writes."""
    conn = sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True, check_same_thread=False,
                           isolation_level=None)
    service = Service(dataclasses.replace(settings, allow_private_urls=True), Store(sqlite_utils.Database(conn)),
                      models)
    service.register_poster("console", ConsolePoster())
    try:
        url = web_server.page("/tides.txt", long_text(), content_type="text/plain; charset=utf-8")
        before = fingerprint(service.store)
        for line in ("/digest schedule 09:00 UTC", f"/add {url}", "/digest now"):
            assert "readonly database" in one_line_error(await respond(service, line)), line
        assert fingerprint(service.store) == before
        for line in ("/sources", "/status", "/search interim CEO"):
            assert (await respond(service, line)).ok, line
    finally:
        service.close()
    assert assert_consistent(settings.db_path) == len(seeded_service.store.documents())


@pytest.mark.skipif(os.geteuid() == 0, reason="chmod does not stop root from writing; see the mode=ro test")
def test_read_only_database_file_makes_cli_index_fail_in_one_line(settings, tmp_path):
    folder = tmp_path / "notes"
    write_corpus(folder, 3)
    db = Path(settings.db_path)
    Store.open(db).close()
    db.chmod(0o444)
    db.parent.chmod(0o555)
    try:
        env = {**os.environ, "DIGESTBOT_DB": str(db), "HF_HUB_OFFLINE": "1"}
        result = subprocess.run([sys.executable, "-m", "bot", "index", str(folder), "--no-embed"], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=120)
    finally:
        db.parent.chmod(0o755)
        db.chmod(0o644)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.strip()]
    assert error.startswith("error: ") and "database" in error
    assert assert_consistent(str(db)) == 0


# -- rate limits and gateway drops while digests are due -------------------------------------------
async def test_scheduled_slack_digest_waits_out_short_and_hands_back_long_retry_after(service, settings):
    clock = Clock(dt.datetime(2024, 5, 1, 8, 0, tzinfo=UTC))
    service.clock = clock
    async with FakeSlack() as slack:
        service.register_poster("slack", SlackPoster(build_app(slack_settings(settings, slack.api_url,
                                                                              slack.bot_token))))
        schedule = {"time": "09:00", "timezone": "UTC"}
        assert (await service.handle(Request("digest schedule", schedule, ADMIN, SLACK_CHANNEL))).ok
        first = add_doc(service, "alpha")
        slack.script("chat.postMessage", status=429, body=RATE_LIMITED, headers={"Retry-After": "1"})
        clock.now = dt.datetime(2024, 5, 1, 9, 0, 5, tzinfo=UTC)
        [outcome] = await run_due(service)  # a short wait happens inside the post
        refused, accepted = slack.calls_to("chat.postMessage")
        assert outcome.status == "posted" and accepted.at - refused.at >= 1.0

        second = add_doc(service, "beta")
        slack.script("chat.postMessage", status=429, body=RATE_LIMITED, headers={"Retry-After": "120"})
        clock.now = dt.datetime(2024, 5, 2, 9, 0, 5, tzinfo=UTC)
        [outcome] = await run_due(service)  # a long one goes back to the outbox, to retry later
        assert outcome.status == "failed" and "rate limit" in outcome.error
        status = await service.handle(Request("digest status", {}, ADMIN, SLACK_CHANNEL))
        assert "retrying Thu 2 May 2024 09:02 UTC" in status.text
        clock.now += dt.timedelta(seconds=60)
        assert await run_due(service) == []  # Retry-After is not over yet: nothing is sent
        assert len(slack.calls_to("chat.postMessage")) == 3
        clock.now += dt.timedelta(seconds=61)
        [outcome] = await run_due(service)
        assert outcome.status == "posted"
        runs = [service.store.schedules.run(m["metadata"]["event_payload"]["run"]) for m in slack.messages]
        assert [run.doc_ids for run in runs] == [[first], [second]]  # each document posted once


class HeldResume(FakeDiscord):
    """Holds the client's RESUME until released: the gateway stays down for as long as the test wants."""

    def __init__(self) -> None:
        super().__init__()
        self.resuming = asyncio.Event()
        self.release = asyncio.Event()

    async def _resume(self, session, data) -> None:
        self.resuming.set()
        await self.release.wait()
        await super()._resume(session, data)

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await super().__aexit__(*exc)


async def test_digest_due_while_the_gateway_is_down_is_posted_once_and_the_session_resumes(service, settings):
    clock = Clock(dt.datetime(2024, 5, 1, 8, 0, tzinfo=UTC))
    service.clock = clock
    async with HeldResume() as fake:
        target = Target("discord", fake.guild_id, fake.channel_id)
        messages = rf"/channels/{fake.channel_id}/messages"
        schedule = {"time": "09:00", "timezone": "UTC"}
        assert (await service.handle(Request("digest schedule", schedule, ADMIN, target))).ok
        doc = add_doc(service, "alpha")
        async with running(service, discord_settings(settings, fake), fake):
            scheduler = DigestScheduler(service)
            await scheduler.start()  # 08:00: nothing due yet
            try:
                session = fake.sessions[0].session_id
                await fake.kill_session()
                await asyncio.wait_for(fake.resuming.wait(), 15)  # the bot is reconnecting, not resumed
                clock.now = dt.datetime(2024, 5, 1, 9, 0, 1, tzinfo=UTC)
                job = scheduler.scheduler.get_job(job_id(service.store.schedules.schedule_for(target).id))
                job.modify(next_run_time=dt.datetime.now(UTC))  # the 09:00 job fires now
                await fake.wait_for("POST", messages, timeout=15)
                assert fake.resumes == []  # posted while the gateway was still down
                fake.release.set()
                await fake.wait_ready()
                await scheduler.tick()  # later wake-ups find nothing left to post
            finally:
                scheduler.shutdown()
        assert fake.resumes[0]["session_id"] == session and len(fake.identifies) == 1
        assert len(fake.calls_to("POST", messages)) == 1
        run = service.store.schedules.last_run(target)
        assert run.status == "posted" and run.doc_ids == [doc]
