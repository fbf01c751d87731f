"""A new chat platform needs an adapter, a renderer and one registration line: tests/fake_platform.py
("plain webhook") is that platform, built on the public seams only, driven through the real service.
Its renderer also runs in the shared renderer tests of tests/test_hostile_adapters.py."""
from __future__ import annotations

import base64
import dataclasses

from hypothesis import given, settings, strategies as st

from bot.core.values import DigestItem, Reply, Source
from tests import fake_platform
from tests.fake_platform import TEXT_LIMIT, render

QUESTION = "Who became interim CEO of OpenAI?"
NOTE = b"# Compost Tea Guide\n\nCompost tea is brewed by steeping mature compost in aerated water for a day.\n"


def message(text: str, *, admin: bool = False, file: dict | None = None) -> dict:
    payload = {"user": "W1", "admin": admin, "team": "hooks", "channel": "garden", "text": text}
    return {**payload, "file": file} if file is not None else payload


def upload(name: str, data: bytes, **extra) -> dict:
    return {"name": name, "content_type": "text/markdown", "size": len(data),
            "data": base64.b64encode(data).decode(), **extra}


def text_of(messages: list[dict]) -> str:
    return "\n".join(m["text"] for m in messages)


async def test_commands_mentions_and_answers_with_the_registry_buttons(seeded_service):
    adapter, _ = fake_platform.register(seeded_service)
    help_text = text_of(await adapter.receive(message("/help")))
    assert all(f"/{name}" in help_text for name in seeded_service.commands)

    search = await adapter.receive(message("/search interim CEO"))
    assert "# Search: interim CEO" in text_of(search)
    assert "\n[1] " in text_of(search)  # the sources, as the shared layout orders them
    assert all(link["url"].startswith("https://") for m in search for link in m["links"])
    assert search[-1]["actions"] == [{"action": "share", "command": "search"}]  # shareable

    answer = await adapter.receive(message(f"@digestbot {QUESTION}"))
    assert "# Answer" in text_of(answer) and "[1]" in text_of(answer)
    assert answer[-1]["actions"] == []  # a mention is answered where everyone sees it: nothing to share
    assert "[1]" in text_of(await adapter.receive(message(f"/ask {QUESTION}")))

    bare = await adapter.receive(message("@digestbot"))
    assert text_of(bare).startswith("# digestbot\nMention me with a question") and bare[-1]["actions"] == []

    assert "Unknown command /nonsense" in text_of(await adapter.receive(message("/nonsense")))
    assert "Type /help" in text_of(await adapter.receive(message("plain words")))
    refused = await adapter.receive(message("/digest pause"))
    assert text_of(refused) == "# Sorry\nSorry: /digest pause is for admins only; nothing was changed."


async def test_files_go_through_the_core_upload_policy(seeded_service):
    adapter, _ = fake_platform.register(seeded_service)
    before = len(seeded_service.store.documents())
    added = await adapter.receive(message("/add", file=upload("guide.md", NOTE)))
    assert text_of(added).startswith("# Added\nAdded **Compost Tea Guide**")
    assert len(seeded_service.store.documents()) == before + 1

    limit = seeded_service.upload_limit
    too_big = await adapter.receive(message("/add", file=upload("big.md", b"x", size=limit + 1)))
    assert "big.md: larger than 10 MB; not indexed." in text_of(too_big)  # refused before "downloading"
    lied = await adapter.receive(message("/add", file={**upload("lied.md", b"y" * (limit + 1)), "size": 5}))
    assert "lied.md: larger than 10 MB; not indexed." in text_of(lied)  # the core checks the bytes again
    garbled = await adapter.receive(message("/add", file={**upload("bad.md", NOTE), "data": "%%%"}))
    assert "bad.md: the file could not be read" in text_of(garbled)
    assert len(seeded_service.store.documents()) == before + 1

    seeded_service.settings = dataclasses.replace(seeded_service.settings, add_policy="admins")
    member = await adapter.receive(message("/add", file=upload("other.md", NOTE + b"More.")))
    assert "Adding documents is for admins here" in text_of(member)
    assert len(seeded_service.store.documents()) == before + 1


async def test_digests_reach_the_new_platform_through_its_poster(seeded_service):
    adapter, poster = fake_platform.register(seeded_service)
    posted = await adapter.receive(message("/digest now", admin=True))
    assert posted and poster.posted, text_of(posted)
    target, reply, messages = poster.posted[0]
    assert target.platform == "webhook" and reply.items
    assert await poster.find(target, reply.data["run"])  # crash recovery finds the run it posted
    poster.history_readable = False
    assert await poster.find(target, "other-run") == "unverified:other-run"


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400), title=st.text(max_size=300), quote=st.text(max_size=200),
       sources=st.integers(0, 12), items=st.integers(0, 30), ok=st.booleans(), repeat=st.integers(1, 30))
def test_any_reply_renders_within_limits_with_every_citation(text, title, quote, sources, items, ok, repeat):
    reply = Reply(text=(text + " ") * repeat, title=title, ok=ok,
                  sources=[Source(n, f"d{n}", title, f"p{n}.md", f"https://example.org/{n}", quote, n)
                           for n in range(1, sources + 1)],
                  items=[DigestItem(f"d{n}", title, f"https://example.org/i{n}", f"https://example.org/i{n}",
                                    "p.md", quote * 5) for n in range(items)])
    messages = render(reply)
    assert messages and all(len(m["text"]) <= TEXT_LIMIT for m in messages)
    urls = [link["url"] for m in messages for link in m["links"]]
    assert urls == [s.url for s in reply.sources] + [i.url for i in reply.items]  # in the layout's order
