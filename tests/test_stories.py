"""Stories in digests: the seeds' documents grouped with their real e5 vectors and names, follow-ups
marked across digests, and the grouping rule itself."""
from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import numpy as np
import pytest

from bot.adapters.console import ConsolePoster
from bot.cli import main as cli_main
from bot.core import stories
from bot.core.ingest import build_document
from bot.core.values import Actor, Request, Target
from bot.core.stories import StoryDoc
from summarizer import Summary

ADMIN = Actor("U1", "Ada", is_admin=True)
CONSOLE = Target("console", "local", "news")
NEWS = Path(__file__).resolve().parent / "data" / "news" / "lee_stories.jsonl"
CRISIS = {"000_e8e752ce90d85e32.txt", "004_26890ec86dba1039.txt"}  # English forum post, German article


def cache_summaries(service) -> None:
    """Put a one-line summary of each document in the cache: the subject here is grouping, not summaries."""
    for doc in service.store.documents():
        summary = Summary(f"About {doc.title}.", (), "English", service.models.summarizer_id)
        service.store.save_summary(doc.content_hash, summary.model_id, service.settings.language,
                                   summary.to_json(), summary.language)


def file_of(service, doc_id: str) -> str:
    return service.store.document(doc_id).path.rsplit("/", 1)[-1]


async def handle(service, command: str):
    return await service.handle(Request(command, {}, ADMIN, CONSOLE))


def test_seed_crisis_documents_form_one_story_across_languages(seeded_service):
    cache_summaries(seeded_service)
    reply = asyncio.run(handle(seeded_service, "digest preview"))
    found = reply.data["stories"]
    groups = [s for s in found if len(s["doc_ids"]) > 1]
    assert [{file_of(seeded_service, d) for d in s["doc_ids"]} for s in groups] == [CRISIS]
    assert "Sam Altman" in groups[0]["label"] or "Greg Brockman" in groups[0]["label"]
    assert sorted(d for s in found for d in s["doc_ids"]) == sorted(i["doc_id"] for i in reply.data["items"])
    assert all(s["update_of"] is None for s in found)
    # shown together, introduced by the story's label
    shown = [item.doc_id for item in reply.items]
    first = shown.index(groups[0]["doc_ids"][0])
    assert shown[first:first + 2] == groups[0]["doc_ids"]
    assert reply.items[first].summary.startswith(f"Story: {groups[0]['label']} (2 documents).")
    assert f"Story: {groups[0]['label']}" in reply.text


def test_a_story_posted_before_comes_back_as_an_update(seeded_service):
    cache_summaries(seeded_service)
    stream = io.StringIO()
    seeded_service.register_poster("console", ConsolePoster(stream))
    first = asyncio.run(handle(seeded_service, "digest now"))
    crisis = next(s for s in first.data["stories"] if len(s["doc_ids"]) > 1)
    # two new reports on the crisis: new documents carrying the original texts with a line added
    for name in sorted(CRISIS):
        old = next(d for d in seeded_service.store.documents() if d.path.endswith(name))
        text = seeded_service.store.document_text(old.id) + "\n\nUpdate: the board talks continued overnight."
        doc, body, passages = build_document(text, path=f"news/update-{name}", title=old.title)
        seeded_service.store.replace_document(doc, body, passages)
    seeded_service.embed_missing()
    cache_summaries(seeded_service)
    reply = asyncio.run(handle(seeded_service, "digest preview"))
    [story] = reply.data["stories"]
    assert len(story["doc_ids"]) == 2
    assert story["update_of"]["label"] == crisis["label"]
    posted = seeded_service.clock().astimezone(seeded_service.store.schedules.posted_stories(CONSOLE)[0]
                                               .posted_at.tzinfo)
    assert f"New on a story from {posted.day} {posted:%b}: {story['label']}" in reply.text


def test_preview_json_on_the_cli_lists_stories(seeded_service, settings, monkeypatch, capsys):
    cache_summaries(seeded_service)
    monkeypatch.setenv("DIGESTBOT_DB", settings.db_path)
    assert cli_main(["digest", "preview", "--target", "console:ops", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {len(s["doc_ids"]) for s in data["stories"]} == {1, 2}
    assert all(set(s) == {"label", "doc_ids", "update_of"} for s in data["stories"])


def _doc(doc_id: str, vector: list[float], *names: str) -> StoryDoc:
    v = np.array(vector, dtype=np.float32)
    return StoryDoc(doc_id, doc_id, frozenset(names), v / np.linalg.norm(v))


def test_grouping_is_deterministic_and_keeps_stories_apart():
    people = ("sam altman", "greg brockman", "satya nadella")
    docs = [_doc("a", [1, 0.1, 0, 0], *people), _doc("b", [1, 0.15, 0.05, 0], *people, "emmett shear"),
            _doc("c", [0, 1, 0.1, 0], "hih royal commission", "ray williams"),
            _doc("d", [0.05, 1, 0, 0.1], "hih royal commission", "ray williams"),
            _doc("e", [0, 0, 1, 0], "peter blake"), _doc("f", [0, 0, 0, 1], "george harrison")]
    found = stories.group(docs)
    assert [s.doc_ids for s in found] == [("a", "b"), ("c", "d"), ("e",), ("f",)]
    assert found[0].label == "Greg Brockman · Sam Altman"
    assert found[2].label == "e" and not found[2].grouped  # a single document keeps its title
    assert [s.doc_ids for s in stories.group(docs[::-1])] == [("f",), ("e",), ("d", "c"), ("b", "a")]
    assert stories.group([]) == []


def test_documents_without_vectors_stay_single():
    docs = [StoryDoc("a", "a", frozenset({"sam altman", "greg brockman", "x y"}), None),
            StoryDoc("b", "b", frozenset({"sam altman", "greg brockman", "x y"}), None)]
    assert [s.doc_ids for s in stories.group(docs)] == [("a",), ("b",)]


@pytest.mark.parametrize("title,text,language,expected", [
    ("Microsoft holt Sam Altman", "Satya Nadella sagte am Montag, dass Greg Brockman kommt.", "de",
     {"sam altman", "satya nadella", "greg brockman"}),
    ("Is OpenAI Imploding?", "The board of OpenAI fired Sam Altman's team.", "en", {"openai", "sam altman"}),
])
def test_names(title, text, language, expected):
    assert expected <= stories.names(title, text, language)


async def handle_as(service, command: str, actor: Actor = ADMIN, **args):
    return await service.handle(Request(command, args, actor, CONSOLE))


def test_channel_filter_keeps_and_drops_with_reasons(seeded_service):
    cache_summaries(seeded_service)
    member = Actor("U2", "Bob")
    no_schedule = asyncio.run(handle_as(seeded_service, "digest filter", rules="include:openai"))
    assert not no_schedule.ok and "no digest schedule" in no_schedule.text
    asyncio.run(handle_as(seeded_service, "digest schedule", time="09:00", timezone="UTC"))
    refused = asyncio.run(handle_as(seeded_service, "digest filter", member, rules="include:openai"))
    assert not refused.ok
    for bad, says in [("include:,", "Empty filter"), ("include:", "Bad filter part"), ("colour:red", "Bad filter part"),
                      ("topic:\"AI policy\" threshold:2", "threshold must be"), ("include:x exclude:x", "both")]:
        reply = asyncio.run(handle_as(seeded_service, "digest filter", rules=bad))
        assert not reply.ok and says in reply.text and "\n" not in reply.text.strip(), (bad, reply.text)
    assert seeded_service.store.schedules.schedule_for(CONSOLE).filter is None  # bad filters change nothing

    done = asyncio.run(handle_as(seeded_service, "digest filter", rules="include:openai,ilya exclude:llama"))
    assert done.ok and done.data["filter"]["exclude"] == ["llama"]
    preview = asyncio.run(handle_as(seeded_service, "digest preview"))
    kept = {file_of(seeded_service, i["doc_id"]) for i in preview.data["items"]}
    dropped = {file_of(seeded_service, d["doc_id"]): d["reason"] for d in preview.data["dropped"]}
    assert dropped == {"001_bbe9685bcaad8dc0.txt": "excluded word: llama"}
    assert kept == {"000_e8e752ce90d85e32.txt", "002_f4b6692de1b2028a.txt", "003_eb458d82eaf8037a.txt",
                    "004_26890ec86dba1039.txt"}
    assert "excluded word: llama" in preview.text and "drops 1" in preview.text

    cleared = asyncio.run(handle_as(seeded_service, "digest filter", rules="clear"))
    assert cleared.data["filter"] is None
    assert len(asyncio.run(handle_as(seeded_service, "digest preview")).data["items"]) == 5


def test_topic_filter_keeps_the_articles_on_its_topic(service):
    """Real news (tests/data/news): three Sydney to Hobart race reports among other stories' articles."""
    rows = [json.loads(line) for line in NEWS.read_text(encoding="utf-8").splitlines()]
    chosen = [r for r in rows if r["story"] == "sydney-hobart-yacht-race"][:3] + [
        next(r for r in rows if r["story"] == story) for story in
        ("qantas-maintenance-dispute", "nsw-bushfires", "first-test-adelaide", "hih-royal-commission")]
    for row in chosen:
        doc, body, passages = build_document(row["text"], path=f"news/{row['id']}.txt", title=row["title"])
        service.store.replace_document(doc, body, passages)
    service.embed_missing()
    cache_summaries(service)
    asyncio.run(handle_as(service, "digest schedule", time="09:00", timezone="UTC"))
    asyncio.run(handle_as(service, "digest filter", rules='topic:"yacht racing" threshold:0.83'))
    preview = asyncio.run(handle_as(service, "digest preview"))
    kept = {file_of(service, i["doc_id"]) for i in preview.data["items"]}
    assert kept == {f"{r['id']}.txt" for r in chosen[:3]}, preview.data["dropped"]
    assert len(preview.data["dropped"]) == 4
    assert all(d["reason"].startswith("off topic (") for d in preview.data["dropped"])


def test_filter_on_the_cli(seeded_service, settings, monkeypatch, capsys):
    cache_summaries(seeded_service)
    monkeypatch.setenv("DIGESTBOT_DB", settings.db_path)
    assert cli_main(["digest", "schedule", "09:00", "UTC", "--target", "console:ops"]) == 0
    assert cli_main(["digest", "filter", "exclude:llama", "--target", "console:ops"]) == 0
    capsys.readouterr()
    assert cli_main(["digest", "preview", "--target", "console:ops", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["reason"] for d in data["dropped"]] == ["excluded word: llama"]
    assert cli_main(["digest", "filter", "colour:red", "--target", "console:ops"]) != 0
