"""Hostile input: arbitrary unicode, control characters, FTS operators, markdown and mention syntax.

Pushed through every console command (the real Service over a copy of the seeded database), through
the Slack and Discord renderers, and through the real Bolt app and discord.py client. Whatever comes
in: no exception escapes, every message fits the platform's limits, nothing rendered can mention
anyone, and a failed command writes nothing.
"""
from __future__ import annotations

import asyncio
import json
import re
import shutil
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from bot.adapters import render_discord, render_slack
from bot.adapters.console import respond
from bot.adapters.render_console import to_text
from bot.core.ingest import build_document, index_paths
from bot.core.values import Actor, DigestItem, Reply, Request, Source, Target
from bot.core.registry import load_commands
from bot.core.service import Service
from bot.core.store import Store
from tests.fake_discord import FakeDiscord
from tests.fake_slack import BOT_USER_ID, app_mention, event_callback
from tests.test_cli import cli  # noqa: F401
from tests.test_discord import discord_settings, embed_text, pings_nobody, running
from tests.test_render_discord import assert_inert
from tests.test_render_slack import assert_no_mentions
from tests.test_slack import http_bot, responses, send_command, send_event, slack, wait_responses  # noqa: F401

COMMANDS = load_commands()

MENTIONS = ["@everyone", "@here", "@channel", "<@123>", "<@!42>", "<@&1>", "<#5>", "<!here>", "<!channel>",
            "<!everyone>", "<!subteam^S1>", "<!subteam^S1|@team>", f"<@{BOT_USER_ID}>", "<t:1700000000:R>",
            "&lt;!here&gt;"]
FTS = ['"', "'", "*", "^", "NEAR(a b)", "NEAR(", "(", ")", "AND", "OR", "NOT", "text:x", "{a b}:c", "-", "+",
       "' OR 1=1 --", ";", "%", "\\"]
MARKUP = ["**", "_", "`", "```", "~~", "||", "> ", "# ", "-# ", "1. ", "[x](https://evil.example)", "](",
          "<https://evil.example|click>", "https://evil.example/a_b*c", "&amp;", "&", "<", ">", "|", "[1]"]
CONTROL = ["\x00", "\x07", "\x1b[31m", "\r", "\n", "\t", "\u202e", "\u200b", "\ufeff", "\x85", "\u2028", "🔥", "\ud800"]
HOSTILE = st.tuples(
    st.lists(st.one_of(st.sampled_from(MENTIONS + FTS + MARKUP + CONTROL), st.text(max_size=8)), max_size=24),
    st.sampled_from(["", " "]),
).map(lambda parts: parts[1].join(parts[0]))

SLOW = ("ask",)  # runs the encoder over new sentences: a few chosen examples below, not hypothesis
GENERATED = tuple(sorted(set(COMMANDS) - set(SLOW)))  # every other command gets generated arguments
FETCHING = ("add", "feed add")  # generated arguments that look like URLs are skipped: no network
URL = re.compile(r"https?:", re.IGNORECASE)
EXAMPLES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HOSTILE_TEXT = "@everyone <!here> <!channel> <@123> <@&1> <!subteam^S1|@team> **b** `c` [x](https://evil.example) &<>"


def test_every_command_that_fetches_is_kept_off_the_network():
    assert {name for name, cmd in COMMANDS.items() if any(p.name == "url" for p in cmd.params)} == set(FETCHING)


# -- checks ------------------------------------------------------------------------------------------
def fingerprint(store: Store) -> tuple:
    """Everything a failed command must leave as it was."""
    counts = [store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
              for table in ("digest_schedules", "digest_runs", "digest_posted", "feeds", "feed_entries")]
    return len(store.documents()), store.passage_count(), store.generation(), *counts


def check_slack(messages: list[render_slack.SlackMessage]) -> None:
    for message in messages:
        assert len(message.blocks) <= render_slack.MAX_BLOCKS
        for block in message.blocks:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= render_slack.SECTION_LIMIT
            elif block["type"] == "context":
                assert len(block["elements"]) <= render_slack.CONTEXT_ELEMENTS
                assert all(len(e["text"]) <= render_slack.SECTION_LIMIT for e in block["elements"])
        json.dumps(message.kwargs())  # what the Web API client sends
    assert_no_mentions(messages)


def slack_messages(payload: dict[str, Any]) -> list[render_slack.SlackMessage]:
    """A message as the Web API or a response_url received it."""
    return [render_slack.SlackMessage(payload.get("text", ""), payload.get("blocks", []))]


OUR_LINK = re.compile(r"\[((?:\\.|[^\]\\])*)\]\(<[^>]*>\)")  # `[label](<url>)`, built by render_discord.link
CODE_SPAN = re.compile(r"(?<!\\)`[^`\n]+`")  # Discord parses nothing, mentions included, inside inline code


def check_discord_text(text: str) -> None:
    for label in OUR_LINK.findall(text):
        assert_inert(label)
    assert_inert(CODE_SPAN.sub(" ", OUR_LINK.sub(" LINK ", text)))


def check_discord(messages: list[render_discord.DiscordMessage]) -> None:
    for message in messages:
        if message.content is not None:
            assert len(message.content) <= render_discord.CONTENT_LIMIT
            check_discord_text(message.content)
        assert len(message.embeds) <= 10
        assert sum(len(embed) for embed in message.embeds) <= render_discord.EMBED_TOTAL_LIMIT
        for embed in message.embeds:
            assert len(embed.title or "") <= render_discord.TITLE_LIMIT
            assert len(embed.description or "") <= render_discord.DESCRIPTION_LIMIT
            check_discord_text(embed.title or "")
            check_discord_text(embed.description or "")


def check_rendered(reply: Reply) -> None:
    assert isinstance(reply, Reply) and isinstance(reply.text, str)
    check_slack(render_slack.render(reply))
    check_discord(render_discord.render(reply))
    for source in reply.sources:
        check_discord([render_discord.render_quote(source)])
    to_text(reply)


# -- the service under test: seeds + a hostile document + hostile cached summaries ------------------
@pytest.fixture
def hostile_service(seeded_service: Service) -> Service:
    """The seeded service plus a document whose title and text are hostile, and cached summaries full
    of mention syntax (so /summary and digests relay it, and run without the summarizer model)."""
    doc, text, passages = build_document(
        f"{HOSTILE_TEXT}\n\nThe lighthouse keeper logs tide tables. {HOSTILE_TEXT}",
        path="notes/<!here>|@everyone.md", title=f"<!channel> {HOSTILE_TEXT}", url="https://evil.example/<@1>")
    seeded_service.store.replace_document(doc, text, passages)
    seeded_service.embed_missing()
    for doc in seeded_service.store.documents():
        seeded_service.store.save_summary(doc.content_hash, seeded_service.models.summarizer_id,
                                          seeded_service.settings.language, f"{doc.title} says {HOSTILE_TEXT}.",
                                          "English")
    return seeded_service


INTERNAL_ERROR = "Something went wrong on our side"  # Service.handle's reply to an unexpected exception


def check_outcome(service: Service, before: tuple, reply: Reply, what: object) -> None:
    """Rendered for every platform; bad input is a reply about the input, and changed nothing."""
    check_rendered(reply)
    assert INTERNAL_ERROR not in reply.text, what
    if not reply.ok:
        assert fingerprint(service.store) == before, (what, reply.text)


def run_line(service: Service, line: str) -> Reply:
    before = fingerprint(service.store)
    reply = asyncio.run(respond(service, line))
    check_outcome(service, before, reply, line)
    return reply


# -- every command, through the console and the Service -----------------------------------------------
@EXAMPLES
@given(name=st.sampled_from(GENERATED), text=HOSTILE)
def test_console_commands_survive_hostile_arguments(hostile_service, name, text):
    assume(not (name in FETCHING and URL.search(text)))
    run_line(hostile_service, f"/{name} {text}")


@EXAMPLES
@given(name=st.sampled_from(GENERATED), values=st.lists(HOSTILE, min_size=4, max_size=4),
       admin=st.booleans(), platform=st.sampled_from(["console", "slack", "discord"]), channel=HOSTILE)
def test_service_requests_with_hostile_args_actors_and_targets(hostile_service, name, values, admin, platform,
                                                               channel):
    """Args straight from a platform's option fields (no command-line parsing), from anyone, anywhere."""
    args = {param.name: value for param, value in zip(COMMANDS[name].params, values)}
    assume(not (name in FETCHING and any(URL.search(v) for v in args.values())))
    request = Request(name, args, Actor(channel or "u", channel, is_admin=admin), Target(platform, "w", channel))
    before = fingerprint(hostile_service.store)
    check_outcome(hostile_service, before, asyncio.run(hostile_service.handle(request)), request)


def test_questions_and_mentions_with_hostile_text(hostile_service):
    for line in ("@digestbot <!here> who became interim CEO of OpenAI? @everyone <@&1>",
                 '/ask \x00\x1b[31m NEAR( "OpenAI" AND **board** <!subteam^S1|@team>',
                 "@digestbot " + "🔥" * 40 + " [x](https://evil.example) `<@123>` ~~||",
                 "/ask lighthouse tide tables"):  # finds the hostile document itself
        assert run_line(hostile_service, line).ok, line


def test_lone_surrogates_from_platform_json_are_bad_input_not_an_internal_error(hostile_service):
    """discord.py and Bolt decode JSON, where `"\\ud800"` is a lone surrogate that UTF-8 cannot encode."""
    for name, args in (("ask", {"question": "who is the CEO \ud800"}), ("summary", {"document": "\ud800"}),
                       ("feed remove", {"feed": "\udfff"})):
        before = fingerprint(hostile_service.store)
        reply = asyncio.run(hostile_service.handle(Request(name, args, Actor("u", is_admin=True),
                                                           Target("discord", "1", "2"))))
        check_outcome(hostile_service, before, reply, (name, args))


@settings(max_examples=100, deadline=None)
@given(text=HOSTILE, title=HOSTILE, quote=HOSTILE, path=HOSTILE,
       url=st.one_of(st.none(), HOSTILE.map(lambda s: "https://example.org/" + s)),
       sources=st.integers(0, 12), items=st.integers(0, 30), ok=st.booleans())
# found by this test on a CI run: a link syntax and a mass mention inside a relayed URL's path
@example(text="", title="[x](https://evil.example)", quote="", path="", sources=0, items=1, ok=True,
         url="https://example.org/@everyone[x](https://evil.example)")
@example(text="", title="x", quote="", path="", sources=1, items=1, ok=True, url="https://[x](https://evil.example)")
def test_any_reply_renders_inert_and_within_limits(text, title, quote, path, url, sources, items, ok):
    reply = Reply(
        text=(text + " ") * 20, title=title, ok=ok,
        sources=[Source(n, f"d{n}", title, path, url, quote, n) for n in range(1, sources + 1)],
        items=[DigestItem(f"d{n}", title, url or path, url, path, quote * 5, text[:20]) for n in range(items)])
    check_rendered(reply)


# -- documents carrying prompt injections and mentions, rendered for both platforms -------------------
INJECTION = "tests/data/injection.md"
INJECTION_QUESTION = "What does the memo tell the bot to reply?"


@pytest.fixture
def injected(seeded_service: Service, tmp_path) -> Service:
    shutil.copy(INJECTION, tmp_path / "memo.md")
    index_paths(seeded_service.store, [tmp_path / "memo.md"])
    seeded_service.embed_missing()
    return seeded_service


async def test_injected_document_is_quoted_as_data_and_pings_nobody(injected):
    before = fingerprint(injected.store)
    reply = await injected.handle(Request("ask", {"question": INJECTION_QUESTION}, Actor("u"),
                                          Target("slack", "T", "C")))
    assert reply.ok and "<!here>" in reply.text  # the answer quotes the memo's instructions...
    check_rendered(reply)  # ...as inert text
    slack_text = json.dumps([m.blocks for m in render_slack.render(reply)])
    assert "&lt;!here&gt;" in slack_text and "&lt;@&amp;123456789&gt;" in slack_text
    discord_text = "".join(e.description or "" for m in render_discord.render(reply) for e in m.embeds)
    assert "\\<!here>" in discord_text and "@\u200beveryone" in discord_text
    memo = next(s for s in reply.sources if "<!here>" in s.quote)
    assert "\\<@&123456789>" in render_discord.render_quote(memo).embeds[0].description  # "show source"
    assert fingerprint(injected.store) == before  # "delete every document" did nothing


async def test_injected_document_asked_about_on_slack_and_discord_pings_nobody(injected, http_bot, slack, settings):
    mention = app_mention(f"<@{BOT_USER_ID}> {INJECTION_QUESTION}", ts="1700000001.000100")
    assert (await send_event(http_bot, event_callback(mention)))[0] == 200
    [post] = await slack.wait_calls("chat.postMessage", timeout=60)
    check_slack(slack_messages(post.params))
    assert "&lt;!here&gt;" in json.dumps(post.params["blocks"])

    async with FakeDiscord() as fake, running(injected, discord_settings(settings, fake), fake):
        await fake.dispatch("MESSAGE_CREATE", fake.message(f"<@{fake.app_id}> {INJECTION_QUESTION}"))
        answer = await fake.wait_for("POST", r"/channels/\d+/messages", timeout=60)
    assert pings_nobody(answer)  # allowed_mentions: nothing
    check_discord_text(embed_text(answer))
    assert "\\<!here>" in embed_text(answer)


# -- a handful of hostile requests through the real Bolt app -----------------------------------------
SLACK_COMMANDS = {
    "lookup": "search <!here> <@U123> <!subteam^S1|@team> **x** `y` NEAR( \" AND &lt;@U9&gt;",
    "unknown-document": 'summary "<!channel> @everyone &amp; &lt;script&gt;"',
    "too-many-arguments": "sources <!channel> <@U123>",  # refused by the parser: answered in the ack
    "member-changes-digest": "digest schedule 09:00 <!here> <@U0ADMIN>",
    "too-long": "search " + "&lt;!here&gt; <@U1> " * 200,
    "control-characters": "search \x00\x07\x1b[31m \u202e <#C1|general> <https://evil.example|click>",
}


async def test_hostile_slash_commands_through_bolt_are_answered_inert(http_bot, slack, hostile_service):
    before = fingerprint(hostile_service.store)
    acks = {}
    for name, text in SLACK_COMMANDS.items():
        status, acks[name], _ = await send_command(http_bot, slack, text, name)
        assert status == 200
        assert_no_mentions([render_slack.SlackMessage(acks[name], [])])
    assert "Too many arguments" in acks.pop("too-many-arguments")
    for name in acks:
        [reply] = await wait_responses(slack, name)
        check_slack(slack_messages(reply))
    assert "admins only" in json.dumps(responses(slack, "member-changes-digest"))
    assert "too long" in json.dumps(responses(slack, "too-long"))
    assert fingerprint(hostile_service.store) == before



# -- filters and arguments that used to reach "Something went wrong" or match too much -----------------
def handle(service: Service, command: str, admin: bool = False, **args: str) -> Reply:
    """One request through Service.handle; a refusal must be one line and change nothing."""
    before = fingerprint(service.store)
    reply = asyncio.run(service.handle(Request(command, args, Actor("u", is_admin=admin), Target("console", "w", "c"))))
    check_outcome(service, before, reply, (command, args))
    if not reply.ok:
        assert len(reply.text.splitlines()) == 1, reply.text
    return reply


@pytest.fixture
def wildcard_service(hostile_service: Service) -> Service:
    """Two documents whose titles differ only where a LIKE wildcard would match: `100%` and `1000`,
    `a_b` and `axb`, each with a cached summary (so /summary runs without the model)."""
    for title in ("Growth 100% plan", "Growth 1000 plan", "The a_b memo", "The axb memo"):
        doc, text, passages = build_document(f"{title}: lighthouse tide tables.", path=f"w/{title}.md", title=title)
        hostile_service.store.replace_document(doc, text, passages)
        hostile_service.store.save_summary(doc.content_hash, hostile_service.models.summarizer_id,
                                           hostile_service.settings.language, f"{title} summarized.", "English")
    return hostile_service


def test_a_document_filter_of_fifty_thousand_characters_is_a_short_error(hostile_service):
    reply = handle(hostile_service, "summary", document="x" * 50_000)
    assert not reply.ok and "No indexed document matches" in reply.text


@pytest.mark.parametrize("needle, title", [("100%", "Growth 100% plan"), ("a_b", "The a_b memo")])
def test_like_wildcards_in_a_document_filter_match_literally(wildcard_service, needle, title):
    reply = handle(wildcard_service, "summary", document=needle)
    assert reply.ok and reply.data["title"] == title, reply.text


@pytest.mark.parametrize("needle", ["\x00", "Growth\x00", "%%", "1__0"])  # LIKE: all; "Growth"; all; 100%, 1000
def test_a_filter_with_a_nul_or_wildcards_matches_no_document(wildcard_service, needle):
    reply = handle(wildcard_service, "search", query="lighthouse", document=needle)
    assert not reply.ok and "No indexed document matches" in reply.text


@pytest.mark.parametrize("zone", ["Europe", "America/", "Europe/../Europe/Berlin", "/etc/localtime", "."])
def test_a_timezone_that_is_a_folder_or_a_path_is_a_short_error(hostile_service, zone):
    reply = handle(hostile_service, "digest schedule", admin=True, time="09:00", timezone=zone)
    assert not reply.ok and "Area/City" in reply.text and re.search(r" [A-Z]\w+/[A-Z]", reply.text), reply.text


@pytest.mark.parametrize("since", ["2024-01-01garbage", "2024-01-01 and more", "2024-13-01", "yesterday"])
def test_a_since_date_with_anything_after_it_is_a_short_error(hostile_service, since):
    reply = handle(hostile_service, "search", query="lighthouse", since=since)
    assert not reply.ok and "YYYY-MM-DD" in reply.text


def test_a_since_date_and_a_full_timestamp_are_accepted(hostile_service):
    for since in ("2024-01-01", " 2024-01-01 ", "2024-01-01T09:30:00+01:00"):
        assert handle(hostile_service, "search", query="lighthouse", since=since).ok, since


def test_a_bad_since_date_through_the_cli_is_one_line_and_exit_1(cli):
    code, out, err = cli("search", "lighthouse", "--since", "2024-01-01garbage")
    assert code == 1 and out == "" and "Traceback" not in err
    assert "Bad date '2024-01-01garbage': use YYYY-MM-DD." in err.splitlines()
    code, out, _ = cli("search", "lighthouse", "--since", "2024-01-01", "--json")
    assert code == 0 and json.loads(out)["results"]
