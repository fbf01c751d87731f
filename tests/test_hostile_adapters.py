"""Hostile input at the adapters: disguised links in every renderer, malformed Slack HTTP requests.

A link whose visible text names one host must not lead to another: whatever a document's title or
text holds, no renderer produces a clickable link that shows a URL or host other than its target.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time

import pytest
from aiohttp import ClientSession
from hypothesis import given, settings, strategies as st

from bot.adapters import render_discord, render_slack, slack_app
from bot.adapters.render_console import to_text
from bot.core.values import DigestItem, Reply, Source
from tests import fake_platform
from tests.test_slack import FORM, SECRET, events_url, http_bot, slack  # noqa: F401

HOSTS = ["intranet.example", "evil.example", "login.intranet.example", "bank.example.org", "xn--e1afmkfd.example"]
LABELS = ["{host}", "https://{host}/login", "http://{host}", "Sign in at {host} now", "www.{host}", "{HOST}",
          "[{host}]", "<{host}>", "**https://{host}/a**", "`{host}`", "Quarterly report", "{host}/path?q=1"]


def label_strategy() -> st.SearchStrategy[str]:
    return st.builds(lambda template, host: template.format(host=host, HOST=host.upper()),
                     st.sampled_from(LABELS), st.sampled_from(HOSTS))


URLS = st.sampled_from(HOSTS).map(lambda host: f"https://{host}/phish")
RELAYED = st.builds(lambda label, url, form: form.format(label=label, url=url), label_strategy(), URLS,
                    st.sampled_from(["[{label}]({url})", "see [{label}](<{url}>) now", "<{url}|{label}>",
                                     "[{label}]( {url} )", "**[{label}]({url})**", "_[{label}]({url})_",
                                     "[{label}]({url} \"{label}\")", "[[{label}]]({url})"]))


def host_of(url: str) -> str:
    """The host a link target leads to ("" when the target is no web URL: then it names no host)."""
    match = re.match(r"<?https?://([^/:>\s]+)", url, re.IGNORECASE)
    return re.sub(r"^www\.", "", match.group(1).lower()) if match else ""


def shown_hosts(label: str) -> set[str]:
    """The test hosts a reader sees in a link's visible text."""
    label = label.lower()
    return {host for host in HOSTS if re.search(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", label)}


def assert_honest(label: str, target: str) -> None:
    assert shown_hosts(label) <= {host_of(target)}, (label, target)


# -- what each platform makes clickable --------------------------------------------------------------
# Discord's masked-link rule (simple-markdown, as the client uses it): [label](target "title")
DISCORD_MASKED = re.compile(r"\[((?:\[[^\]]*\]|[^\[\]]|\](?=[^\[]*\]))*)\]\(\s*<?((?:\([^)]*\)|[^\s\\])*?)>?"
                            r"(?:\s+['\"]([\s\S]*?)['\"])?\s*\)")
ESCAPED = re.compile(r"\\([^\w\s])")
PLACEHOLDERS = str.maketrans("[]()<>", "\uff3b\uff3d\uff08\uff09\uff1c\uff1e")  # look-alikes that form no syntax


def discord_links(markdown: str) -> list[tuple[str, str]]:
    """(visible text, target) of every masked link Discord would render from `markdown`."""
    literal = ESCAPED.sub(lambda m: m.group(1).translate(PLACEHOLDERS), markdown)
    literal = re.sub(r"`[^`\n]+`", " ", literal)  # inside inline code nothing is parsed
    return [(m.group(1), m.group(2)) for m in DISCORD_MASKED.finditer(literal)]


def slack_links(mrkdwn: str) -> list[tuple[str, str]]:
    """(visible text, target) of every `<url|label>` link in Slack mrkdwn."""
    return [(label, url) for url, label in re.findall(r"<([^<>|]+)\|([^<>]*)>", mrkdwn)]


def discord_texts(messages: list[render_discord.DiscordMessage]) -> list[str]:
    return [t for m in messages for t in (m.content or "", *(e.description or "" for e in m.embeds),
                                          *(e.title or "" for e in m.embeds))]


def slack_texts(messages: list[render_slack.SlackMessage]) -> list[str]:
    texts = []
    for message in messages:
        for block in message.blocks:
            if block["type"] == "section":
                texts.append(block["text"]["text"])
            texts += [e["text"] for e in block.get("elements", []) if isinstance(e.get("text"), str)]
    return texts


def discord_rendered_links(reply: Reply) -> list[tuple[str, str]]:
    found = [link for text in discord_texts(render_discord.render(reply)) for link in discord_links(text)]
    for source in reply.sources:
        embed = render_discord.render_quote(source).embeds[0]
        if embed.url:  # the embed title is a link to embed.url
            found.append((embed.title or "", embed.url))
        else:  # the real target is still shown
            assert source.link in (embed.footer.text or ""), embed.to_dict()
    return found


def console_rendered_links(reply: Reply) -> list[tuple[str, str]]:
    """Plain text has no labelled links; the real target of every source is shown."""
    console = to_text(reply)
    assert all(source.link in console for source in reply.sources)
    return []


# (visible text, target) of every link each platform's renderer makes; a new platform adds one entry
RENDERED_LINKS = {
    "discord": discord_rendered_links,
    "slack": lambda reply: [link for text in slack_texts(render_slack.render(reply)) for link in slack_links(text)],
    "console": console_rendered_links,
    "webhook": lambda reply: [(link["label"], link["url"]) for message in fake_platform.render(reply)
                              for link in message["links"]],
}


@pytest.mark.parametrize("platform", RENDERED_LINKS)
@settings(max_examples=300, deadline=None)
@given(title=label_strategy(), url=URLS, text=RELAYED, quote=RELAYED, published=label_strategy())
def test_no_renderer_makes_a_link_whose_text_names_another_host(platform, title, url, text, quote, published):
    reply = Reply(text=text, title=title, sources=[Source(1, "d1", title, "p.md", url, quote, 1)],
                  items=[DigestItem("d1", title, url, url, "p.md", quote, published)])
    for label, target in RENDERED_LINKS[platform](reply):
        assert_honest(label, target)


def test_disguised_markdown_link_in_relayed_text_is_not_clickable_on_discord():
    text = "[https://intranet.example/login](https://evil.example/phish)"
    out = render_discord.escape(text)
    assert discord_links(out) == []
    assert "https://intranet.example/login" in out and "https://evil.example/phish" in out  # both shown plainly


def test_source_titled_with_another_host_shows_its_real_target_on_every_platform():
    source = Source(1, "d1", "intranet.example", "p.md", "https://evil.example/phish", "q", 1)
    discord = render_discord.link(source.url, source.title)
    assert discord_links(discord) == [] and "<https://evil.example/phish>" in discord
    slack = render_slack.link(source.url, source.title)
    assert slack_links(slack) == [] and "<https://evil.example/phish>" in slack
    quote = render_discord.render_quote(source).embeds[0]
    assert quote.url is None and quote.footer.text == "https://evil.example/phish"
    assert "intranet.example <https://evil.example/phish>" in to_text(Reply("x", [source]))
    [webhook] = fake_platform.render(Reply("x", [source]))
    assert webhook["links"] == [{"label": "https://evil.example/phish", "url": "https://evil.example/phish"}]


def test_honest_links_stay_links():
    assert render_discord.link("https://www.intranet.example/a", "intranet.example handbook") == (
        "[intranet.example handbook](<https://www.intranet.example/a>)")
    assert render_slack.link("https://intranet.example/a", "Handbook") == "<https://intranet.example/a|Handbook>"
    assert render_discord.render_quote(Source(1, "d", "Handbook", "p", "https://x.example/", "q")).embeds[0].url


# -- Slack HTTP mode: malformed requests ---------------------------------------------------------------
def signed_headers(body: bytes, timestamp: str | None = None, secret: str = SECRET) -> dict[str, str]:
    """Slack's signature over raw bytes (so a body need not be UTF-8)."""
    ts = timestamp or str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def malformed_requests() -> list[tuple[str, bytes, dict[str, str]]]:
    """(name, body, headers): bodies a correctly signed or unsigned client could send that Bolt cannot read."""
    json_type, form_type = {"Content-Type": "application/json"}, {"Content-Type": FORM}
    cases = [("bad json", b'{"type": "event_callback", ', json_type),
             ("json list", b"[1, 2]", json_type),
             ("json string", b'"event_callback"', json_type),
             ("bad json in payload", b"payload=%7Bnot-json", form_type),
             ("payload is a list", b"payload=%5B1%5D", form_type),
             ("fields of odd types", b'{"type": "event_callback", "team": 5, "authorizations": 5}', json_type),
             ("non-utf-8 json", b'{"type": "\xff\xfe"}', json_type),
             ("non-utf-8 form", b"command=%2Fdigestbot&text=\xff\xfe", form_type)]
    signed = [(name, body, {**kind, **signed_headers(body)}) for name, body, kind in cases]
    body = b"command=%2Fdigestbot&text=help"
    unsigned = [("timestamp abc", body, {**form_type, **signed_headers(body, timestamp="abc")}),
                ("timestamp empty", body, {**form_type, "X-Slack-Request-Timestamp": "", "X-Slack-Signature": "v0=1"}),
                ("no headers", body, form_type),
                ("no signature", body, {**form_type, "X-Slack-Request-Timestamp": str(int(time.time()))}),
                ("signature not hex", body, {**form_type, **signed_headers(body), "X-Slack-Signature": "v0=\u00e9"})]
    return signed + unsigned


async def post_raw(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        await response.read()
        return response.status


async def test_malformed_slack_requests_get_4xx_and_a_few_log_lines(http_bot, slack, caplog):
    caplog.set_level(logging.INFO)
    url = events_url(http_bot)
    cases = malformed_requests()
    statuses = {}
    for round_ in range(300 // len(cases) + 1):
        for name, body, headers in cases:
            statuses.setdefault(name, set()).add(await post_raw(url, body, headers))
    assert all(found <= {400, 401} for found in statuses.values()), statuses
    assert statuses["timestamp abc"] == statuses["no headers"] == {401} and statuses["bad json"] == {400}
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records if r.exc_info][:3]
    assert len(errors) <= 3, [r.getMessage() for r in errors][:10]
    assert slack.calls == []  # nothing was run


def test_refusals_are_logged_once_per_interval_with_their_counts(caplog):
    now = [0.0]
    refusals = slack_app.RefusalLog(interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger=slack_app.log.name):
        for second in range(0, 150):  # two refusals a second for 150 s
            now[0] = float(second)
            refusals.note("bad json")
            refusals.note("bad or stale signature")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3  # at 0 s, 60 s and 120 s
    assert lines[0].startswith("refused 1 Slack HTTP request(s): bad json ×1")
    assert lines[1].startswith("refused 120 Slack HTTP request(s): ") and "bad json ×60" in lines[1]
    assert "bad or stale signature ×60" in lines[1]
    assert refusals.counts.total() == 59  # the 29 s since the last line wait for the next one
