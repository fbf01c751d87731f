"""Block Kit rendering: limits, links and escaping of hostile relayed text."""
from __future__ import annotations

import json
import re

from hypothesis import given, settings, strategies as st

from bot.adapters.render_slack import (
    MAX_BLOCKS,
    SECTION_LIMIT,
    Button,
    escape,
    link,
    plain_text,
    render,
    split_text,
)
from bot.core.values import DigestItem, Reply, Source

HOSTILE = "<!here> <!channel> <!everyone> <@U123> <!subteam^S1|@team> <#C1> & <https://evil.example|click>"
# The only `<…>` a rendered message may contain: a web link, plain or with a label that has no `<`, `>` or `|`.
OUR_LINK = re.compile(r"<https?://[^\s<>|]+(?:\|[^<>|]*)?>")


def texts(messages) -> list[str]:
    """Every mrkdwn/plain string in the messages, fallback text included."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for m in messages:
        found.append(m.text)
        walk(m.blocks)
    return found


def assert_no_mentions(messages):
    for text in texts(messages):
        stripped = OUR_LINK.sub("", text)
        assert "<" not in stripped and ">" not in stripped, text


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def source(n, title="Doc", url="https://example.org/doc", quote="q"):
    return Source(n=n, doc_id=f"d{n}", title=title, path=f"/docs/d{n}.md", url=url, quote=quote)


def test_escape_covers_slack_control_characters():
    assert escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape("&lt;") == "&amp;lt;"  # already-escaped text is not trusted either


def test_hostile_text_title_and_sources_cannot_mention_anyone():
    reply = Reply(
        text=f"**Answer** {HOSTILE} [1]",
        title=f"Title {HOSTILE}",
        sources=[source(1, title=f"A | title > with {HOSTILE}", url="https://example.org/a?x=1&y=<2>|z")],
    )
    messages = render(reply)
    assert_no_mentions(messages)
    section = messages[0].blocks[1]["text"]
    assert section["verbatim"] is True
    assert "&lt;!here&gt;" in section["text"] and "*Answer*" in section["text"]
    context = [b for b in messages[0].blocks if b["type"] == "context"][0]
    ref = context["elements"][0]["text"]
    # the title names evil.example, so it is no link label: the real target is shown after it
    assert ref.startswith("[1] A ¦ title &gt; with &lt;!here&gt;")
    assert ref.endswith(" <https://example.org/a?x=1&amp;y=%3C2%3E%7Cz>")


def test_sources_without_web_url_show_the_path_and_no_link():
    reply = Reply(text="x [1] [2]", sources=[source(1, url=None), source(2, url="javascript:alert(1)")])
    refs = [e["text"] for b in render(reply)[0].blocks if b["type"] == "context" for e in b["elements"]]
    assert refs[0] == "[1] Doc — /docs/d1.md"
    assert "<" not in refs[1] and refs[1].startswith("[2] Doc")


def test_many_sources_use_context_blocks_of_at_most_ten_elements():
    reply = Reply(text="x", sources=[source(n) for n in range(1, 24)])
    contexts = [b for b in render(reply)[0].blocks if b["type"] == "context"]
    assert [len(c["elements"]) for c in contexts] == [10, 10, 3]


def test_long_answer_is_split_into_sections_within_limits_and_nothing_is_lost():
    words = [f"w{i}&<{i}>" for i in range(12000)]
    text = " ".join(words)
    messages = render(Reply(text=text))
    assert len(messages) > 1
    sections = [b["text"]["text"] for m in messages for b in m.blocks if b["type"] == "section"]
    assert all(len(s) <= SECTION_LIMIT for s in sections)
    assert all(len(m.blocks) <= MAX_BLOCKS for m in messages)
    assert unescape(" ".join(sections)).split() == words
    assert messages[1].text.endswith(f"(2/{len(messages)})")


def test_split_never_cuts_an_entity():
    text = escape("&" * 5000)  # no break characters: hard cuts only
    pieces = split_text(text, 3000)
    assert "".join(pieces) == text
    assert all(p.startswith("&amp;") and p.endswith(";") for p in pieces)


def test_split_prefers_paragraph_breaks():
    text = "a" * 1600 + "\n\n" + "b " * 1000
    pieces = split_text(text, 3000)
    assert pieces == ["a" * 1600, ("b " * 1000).rstrip()]


def test_long_digest_is_split_across_messages_within_fifty_blocks():
    items = [
        DigestItem(doc_id=f"d{i}", title=f"Item {i} <!channel>", link=f"https://example.org/{i}",
                   url=f"https://example.org/{i}", path=f"/docs/{i}.md", summary=f"Summary {i} <@U{i}> " * 40,
                   published="2024-05-01")
        for i in range(60)
    ]
    messages = render(Reply(text="**Digest**", title="Weekly digest", items=items))
    assert len(messages) >= 3
    assert all(len(m.blocks) <= MAX_BLOCKS for m in messages)
    assert_no_mentions(messages)
    linked = [t for t in texts(messages) if t.startswith("*<https://example.org/")]
    assert len(linked) == 60
    assert linked[7].startswith("*<https://example.org/7|Item 7 &lt;!channel&gt;>*\nSummary 7 &lt;@U7&gt;")


def test_buttons_go_in_an_actions_block_at_the_end_of_the_last_message():
    reply = Reply(text="y " * 1500 * 49)  # fills whole messages with sections
    messages = render(reply, buttons=[Button("Share in channel", "share", '{"c":"ask"}')])
    assert messages[-1].blocks[-1]["type"] == "actions"
    assert messages[-1].blocks[-1]["elements"][0]["value"] == '{"c":"ask"}'
    assert all(len(m.blocks) <= MAX_BLOCKS for m in messages)
    assert sum(b["type"] == "actions" for m in messages for b in m.blocks) == 1


def test_failed_reply_is_marked_and_kwargs_disable_unfurls():
    message = render(Reply(text="No such document: <!here>", ok=False))[0]
    assert message.blocks[0]["text"]["text"] == ":warning: No such document: &lt;!here&gt;"
    kwargs = message.kwargs()
    assert kwargs["unfurl_links"] is False and kwargs["unfurl_media"] is False
    json.dumps(kwargs)  # what goes over the wire must be plain JSON


def test_link_rejects_oversized_urls():
    assert link("https://example.org/" + "a" * 2000, "Big") == "Big"


def test_plain_text_reads_incoming_slack_formatting():
    text = "<@U0BOT> what is <https://x.org/a|x.org> &amp; &lt;b&gt; in <#C1|general>, <!here> <@U2|bob> <@U3>?"
    assert plain_text(text, drop_user="U0BOT") == "what is x.org & <b> in #general, @here @bob @U3?"


@settings(max_examples=200, deadline=None)
@given(
    text=st.lists(st.sampled_from([*"<>&|!@^#*_`[] \nabcUS1", "<!here>", "<@U1>", "&amp;", "**"]), max_size=200)
    .map("".join),
    title=st.text(max_size=60),
    url=st.one_of(st.none(), st.text(max_size=40).map(lambda s: "https://x.org/" + s)),
)
def test_property_no_relayed_text_forms_a_mention(text, title, url):
    reply = Reply(text=text, title=title, sources=[Source(1, "d", title, url or "/p", url, text)],
                  items=[DigestItem("d", title, url or "/p", url, "/p<!here>", text)])
    assert_no_mentions(render(reply))
