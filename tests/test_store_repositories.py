"""The repositories' contract, on a real SQLite file: what a second storage backend must also pass.

Each aggregate is driven only through its repository (store.schedules, store.feeds, store.chat); two
Store objects on one file stand for two bot processes sharing a database.
"""
from __future__ import annotations

import datetime as dt

import pytest

from bot.core.digest_rules import EMPTY, FAILED, PENDING, POSTED, Period
from bot.core.ingest import build_document
from bot.core.values import Target
from bot.core.store import Store

UTC = dt.timezone.utc
NOON = dt.datetime(2024, 3, 4, 12, 0, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)
TEAM = Target("slack", "T1", "C1")


@pytest.fixture
def other(store: Store):
    """A second connection to the same database file: another process."""
    second = store.reopen()
    yield second
    second.close()


def test_migrations_keep_their_names_and_order(store: Store):
    """Existing databases recorded these names; renaming one would run it again."""
    applied = [row[0] for row in store.db.execute("SELECT name FROM _sqlite_migrations ORDER BY rowid")]
    assert applied == ["m001_documents", "m002_chat_state", "m003_digests", "m006_digest_stories", "m007_digest_filters", "m004_feeds", "m005_feed_documents"]


def test_a_lease_has_one_holder_until_it_expires(store: Store, other: Store):
    mine, theirs = store.schedules, other.schedules
    assert mine.try_acquire_lease("digests", "a", NOON + 5 * MINUTE, NOON)
    assert not theirs.try_acquire_lease("digests", "b", NOON + 5 * MINUTE, NOON + MINUTE)
    assert mine.try_acquire_lease("digests", "a", NOON + 6 * MINUTE, NOON + MINUTE)  # its holder may extend it
    assert mine.renew_lease("digests", "a", NOON + 7 * MINUTE)
    assert not theirs.try_acquire_lease("digests", "b", NOON + 9 * MINUTE, NOON + 7 * MINUTE - dt.timedelta(seconds=1))
    # expired: another holder takes it, and the old one can neither renew nor release it
    assert theirs.try_acquire_lease("digests", "b", NOON + 12 * MINUTE, NOON + 7 * MINUTE)
    assert not mine.renew_lease("digests", "a", NOON + 13 * MINUTE)
    mine.release_lease("digests", "a")
    assert not mine.try_acquire_lease("digests", "a", NOON + 13 * MINUTE, NOON + 8 * MINUTE)
    theirs.release_lease("digests", "b")
    assert mine.try_acquire_lease("digests", "a", NOON + 13 * MINUTE, NOON + 8 * MINUTE)
    assert theirs.try_acquire_lease("other-lease", "b", NOON + 13 * MINUTE, NOON + 8 * MINUTE)  # names are separate


def test_a_schedule_is_one_per_channel_and_pausing_moves_its_start(store: Store, other: Store):
    schedules = store.schedules
    assert schedules.schedule_for(TEAM) is None and schedules.schedules() == []
    first = schedules.save_schedule(TEAM, dt.time(9, 0), "Europe/Berlin", frozenset({0, 1, 2, 3, 4}), False,
                                    "U1 (Ada)", NOON)
    assert (first.at, first.timezone, first.days, first.active_since) == (
        dt.time(9, 0), "Europe/Berlin", frozenset(range(5)), NOON)
    replaced = schedules.save_schedule(TEAM, dt.time(7, 30), "UTC", frozenset({5, 6}), True, "U2", NOON + MINUTE)
    assert replaced.id == first.id and replaced.notify_empty and replaced.days == frozenset({5, 6})
    schedules.set_paused(first.id, True, NOON + 2 * MINUTE)
    paused = other.schedules.schedule_for(TEAM)
    assert paused.paused and paused.active_since == NOON + 2 * MINUTE
    assert other.schedules.schedules(first.id) == [paused] and other.schedules.schedules(first.id + 1) == []


def test_a_run_goes_pending_failed_posted_and_its_documents_count_as_posted(store: Store):
    runs = store.schedules
    period = Period(NOON - dt.timedelta(days=1), NOON, 1)
    runs.record_run("s1@noon", 1, TEAM, period, ["d1", "d2"], NOON)
    assert runs.run("s1@noon").status == PENDING and runs.runs(PENDING)[0].doc_ids == ["d1", "d2"]
    runs.record_failed("s1@noon", "rate limited", NOON + MINUTE, NOON)
    failed = runs.run("s1@noon")
    assert (failed.status, failed.error, failed.retry_at, failed.attempts) == (FAILED, "rate limited", NOON + MINUTE, 1)
    assert runs.covered_until(1) is None and runs.posted_doc_ids(TEAM) == set()
    runs.record_run("s1@noon", 1, TEAM, period, ["d1", "d2"], NOON + MINUTE)  # the retry
    runs.record_posted("s1@noon", TEAM, "C1/123.4", ["d1", "d2"], NOON + 2 * MINUTE)
    posted = runs.run("s1@noon")
    assert (posted.status, posted.message_ref, posted.error, posted.attempts) == (POSTED, "C1/123.4", None, 2)
    assert runs.posted_doc_ids(TEAM) == {"d1", "d2"} and runs.posted_doc_ids(Target("slack", "T1", "C2")) == set()
    assert runs.covered_until(1) == NOON and runs.last_posted_at(TEAM) == NOON + 2 * MINUTE
    runs.record_run("s1@tomorrow", 1, TEAM, Period(NOON, NOON + dt.timedelta(days=1), 1), [],
                    NOON + dt.timedelta(days=1), status=EMPTY)
    assert runs.last_run(TEAM).key == "s1@tomorrow" and runs.covered_until(1) == NOON + dt.timedelta(days=1)
    assert [run.key for run in runs.runs()] == ["s1@noon", "s1@tomorrow"] and runs.runs(PENDING) == []


def test_feeds_remember_entries_and_their_own_documents(store: Store):
    feeds = store.feeds
    feed_id = feeds.add("https://example.org/feed.xml", "Garden", "2024-03-04T12:00:00+00:00")
    assert feeds.follows("https://example.org/feed.xml") and not feeds.follows("https://example.org/other.xml")
    assert feeds.find(str(feed_id)) == feeds.find("https://example.org/feed.xml") == feeds.feeds()[0]
    assert feeds.find("https://example.org/other.xml") is None
    feeds.record_entry(feed_id, "id:1", "doc-1", "2024-03-04T12:00:00+00:00")
    feeds.record_entry(feed_id, "id:2", None, "2024-03-04T12:00:00+00:00")  # seen, nothing indexed
    feeds.claim(feed_id, "doc-1")
    assert feeds.seen(feed_id) == {"id:1", "id:2"} and feeds.entry_counts() == {feed_id: 1}
    assert feeds.owns(feed_id, "doc-1") and not feeds.owns(feed_id, "doc-2")
    feeds.record_failure(feed_id, "2024-03-04T12:30:00+00:00", "timed out")
    feeds.record_failure(feed_id, "2024-03-04T13:00:00+00:00", "timed out")
    assert (feeds.feeds()[0].error_count, feeds.feeds()[0].last_error) == (2, "timed out")
    feeds.record_success(feed_id, "2024-03-04T13:30:00+00:00", title="Garden news", etag='"v2"', last_modified=None)
    feed = feeds.feeds()[0]
    assert (feed.error_count, feed.last_error, feed.title, feed.etag) == (0, None, "Garden news", '"v2"')
    feeds.remove(feed_id)
    assert feeds.feeds() == [] and feeds.seen(feed_id) == set() and not feeds.owns(feed_id, "doc-1")


def test_chat_state_counts_each_event_once(store: Store, other: Store):
    assert store.chat.first_delivery("slack:event:Ev1") and not other.chat.first_delivery("slack:event:Ev1")
    assert other.chat.first_delivery("slack:event:Ev2") and not store.chat.first_delivery("slack:event:Ev2")


def test_a_document_is_found_at_its_address_except_under_a_given_path(store: Store):
    doc, body, passages = build_document("Frost dates.\n\nThe last frost falls in May.", path="https://ex.org/frost",
                                         title="Frost")
    store.replace_document(doc, body, passages)
    assert store.document_at("https://ex.org/frost", other_than="feed#1") == store.document(doc.id)
    assert store.document_at("https://ex.org/frost", other_than="https://ex.org/frost") is None
    assert store.document_at("https://ex.org/other", other_than="feed#1") is None
