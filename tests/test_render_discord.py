"""Reply -> Discord messages: escaping of hostile relayed text, links, and splitting within limits."""
from __future__ import annotations

import re

from hypothesis import given, settings, strategies as st

from bot.adapters.render_discord import (
    CONTENT_LIMIT, DESCRIPTION_LIMIT, EMBED_TOTAL_LIMIT, TITLE_LIMIT, choice_name, escape,
    link, markdown, render, render_quote, sources_block, split,
)
from bot.core.values import DigestItem, Reply, Source

HOSTILE = ("@everyone @here <@123456789012345678> <@!42> <@&987654321098765432> <#5> <t:1700000000:R> "
           "<:pepe:123> [click](https://evil.example/x) ||spoiler|| ~~gone~~ __under__ *star* `tick` "
           "\\<@99>\n# Heading\n> quote\n-# small\n- bullet\n1. first\n+ plus")
URL_SEGMENT = re.compile(r"<https?://(?:(?!\]\()[^>])*>")  # a `](` inside `<…>` still makes a masked link


def unescaped(text: str, token: str) -> bool:
    """Whether `token` occurs with an even number of backslashes before it (so Discord parses it)."""
    for match in re.finditer(re.escape(token), text):
        slashes = len(text[: match.start()]) - len(text[: match.start()].rstrip("\\"))
        if slashes % 2 == 0:
            return True
    return False


def assert_inert(rendered: str) -> None:
    """No mention, channel, timestamp, emoji or masked link can form; no mass mention outside a URL."""
    outside_urls = URL_SEGMENT.sub(" URL ", rendered)
    assert not re.search(r"@(everyone|here)", outside_urls, re.IGNORECASE), rendered
    for token in ("<@", "<#", "<t:", "<:", "](", "||", "~~", "__"):
        assert not unescaped(outside_urls, token), (token, rendered)


def test_hostile_text_is_escaped_to_literal_text():
    out = escape(HOSTILE)
    assert_inert(out)
    assert "@\u200beveryone" in out and "@\u200bhere" in out
    assert "\\<@123456789012345678>" in out and "\\<@&987654321098765432>" in out
    assert "\\\\\\<@99>" in out  # a relayed backslash cannot un-escape what follows
    assert "\n\\# Heading\n\\> quote\n\\-# small\n\\- bullet\n1\\. first\n\\+ plus" in out
    assert "\\*star\\* \\`tick\\`" in out


def test_urls_in_relayed_text_stay_clickable_without_previews():
    out = escape("see https://example.org/a_b_(c)*d, then stop.")
    assert out == "see <https://example.org/a_b_(c)*d>, then stop."


def test_core_markup_is_kept_and_its_contents_escaped():
    out = markdown("**Bold @here** and _it <@1>_ keep my_snake_case and `code <@1> *x*` [1]")
    assert out == ("**Bold @\u200bhere** and _it \\<@1>_ keep my\\_snake\\_case and `code <@1> *x*` [1]")


def test_source_links_suppress_previews_and_escape_titles():
    assert link("https://example.org/a b", "A [tricky] title") == "[A \\[tricky\\] title](<https://example.org/a%20b>)"
    assert link("javascript:alert(1)", "Bad", "docs/bad.md") == "Bad `docs/bad.md`"
    assert link(None, "Local", "notes/`odd`.md") == "Local notes/\\`odd\\`.md"


def test_answer_renders_as_embed_with_numbered_sources_and_no_mentions():
    reply = Reply("Emmett Shear became interim CEO [1]. @everyone knew [2].", [
        Source(1, "d1", "The <@&1> news", "https://news.example/1", "https://news.example/1", "quote", 7),
        Source(2, "d2", "Local notes", "notes/n.md", None, "quote", 8),
    ], title="Answer")
    [message] = render(reply)
    assert message.content is None
    embed = message.embeds[0].to_dict()
    assert embed["title"] == "Answer"
    assert embed["description"] == (
        "Emmett Shear became interim CEO [1]. @\u200beveryone knew [2].\n\n**Sources**\n"
        "[1] [The \\<@&1> news](<https://news.example/1>)\n[2] Local notes `notes/n.md`")
    assert message.kwargs() == {"content": None, "embeds": message.embeds, "suppress_embeds": False}


def test_failures_are_short_plain_content_without_previews():
    [message] = render(Reply("No document matches **x @here**; see https://example.org", ok=False))
    assert message.content == "⚠️ No document matches **x @\u200bhere**; see <https://example.org>"
    assert not message.embeds and message.kwargs()["suppress_embeds"] is True


def test_long_answers_split_at_paragraphs_within_embed_limits():
    paragraphs = [f"Paragraph {i}: " + " ".join(f"**w{i}x{j}** word" for j in range(120)) for i in range(12)]
    reply = Reply("\n\n".join(paragraphs), [Source(1, "d", "T", "https://e.org", "https://e.org", "q", 1)],
                  title="T" * 400)
    messages = render(reply)
    assert len(messages) > 1
    descriptions = [m.embeds[0].description for m in messages]
    for k, message in enumerate(messages, 1):
        embed = message.embeds[0]
        assert len(embed.description) <= DESCRIPTION_LIMIT and len(embed) <= EMBED_TOTAL_LIMIT
        assert embed.footer.text == f"{k}/{len(messages)}"
        assert embed.description.count("**") % 2 == 0  # no bold span cut in two
    assert len(messages[0].embeds[0].title) <= TITLE_LIMIT and messages[1].embeds[0].title is None
    assert all(d.split("\n\n")[0].startswith("Paragraph") for d in descriptions)  # cut between paragraphs
    whole = markdown(reply.text) + sources_block(reply.sources)
    assert re.sub(r"\s+", "", "".join(descriptions)) == re.sub(r"\s+", "", whole)  # nothing lost or added


def test_digest_items_are_numbered_links_split_between_items():
    items = [DigestItem(f"d{i}", f"Doc {i}", f"https://e.org/{i}", f"https://e.org/{i}", f"docs/{i}.md",
                        f"Summary {i} <@&5>.", "2024-05-01") for i in range(1, 24)]
    items[3] = DigestItem("d4", "Local doc", "docs/4.md", None, "docs/4.md", "", None)
    messages = render(Reply("**23 new documents**, newest first.", title="Digest", items=items))
    descriptions = [m.embeds[0].description for m in messages]
    shown = [int(n) for d in descriptions for n in re.findall(r"^\*\*(\d+)\. ", d, re.MULTILINE)]
    assert shown == list(range(1, 24))
    first = messages[0].embeds[0].description
    assert first.startswith("**23 new documents**, newest first.\n\n**1. [Doc 1](<https://e.org/1>)** · 2024-05-01\n"
                            "Summary 1 \\<@&5>.")
    assert "**4. Local doc**\n`docs/4.md`\n\n**5. " in first  # no URL: the path, and no summary line


def test_show_source_quote_is_escaped_and_truncated():
    quote = "@here look <@1> " + "word " * 2000
    message = render_quote(Source(1, "d", "Title", "https://e.org", "https://e.org", quote, 3))
    embed = message.embeds[0]
    assert embed.url == "https://e.org" and embed.title == "Title"
    assert len(embed.description) <= DESCRIPTION_LIMIT and embed.description.endswith("word…")
    assert_inert(embed.description)


def test_autocomplete_choice_names_fit_discord():
    assert choice_name("  A\nvery   long " + "x" * 300) == "A very long " + "x" * 87 + "…"
    assert len(choice_name("y" * 500)) == 100 and choice_name("   ") == "untitled"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab @<>&!#:*_~`|\\[]()-\n.1 everyonehere") +
                                ["https://x.org/", "<@1>", "@everyone", "**", "[1]"]), max_size=200).map("".join))
def test_any_relayed_text_renders_inert_and_within_limits(text: str):
    assert_inert(escape(text))
    assert_inert(markdown(text.replace("`", "")))  # code spans are raw by design (nothing renders in them)
    for message in render(Reply(text, title=text[:300])) + render(Reply(text, ok=False)):
        if message.content is not None:
            assert len(message.content) <= CONTENT_LIMIT
        for embed in message.embeds:
            assert len(embed.description or "") <= DESCRIPTION_LIMIT and len(embed) <= EMBED_TOTAL_LIMIT


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list("ab \n\\*_`") + ["**bold words**", "<https://x.org/a>"]),
                max_size=1500).map("".join), st.integers(min_value=20, max_value=500))
def test_split_keeps_every_character_and_respects_the_limit(text: str, limit: int):
    pieces = split(text, limit)
    assert all(len(p) <= limit for p in pieces)
    assert re.sub(r"\s+", "", "".join(pieces)) == re.sub(r"\s+", "", text)


def test_split_never_cuts_escapes_links_or_urls():
    text = " ".join(["\\*x\\*", "[T](<https://e.org/a b>)", "<https://example.org/very/long/path>"] * 200)
    for piece in split(text, 100):
        assert not piece.endswith("\\") or piece.endswith("\\\\")
        assert piece.count("<") == piece.count(">") and piece.count("[") == piece.count("]")
