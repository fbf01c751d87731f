"""The console driven like a script: lines in, rendered replies out, through the real service."""
import asyncio
import io

import pytest

from bot.adapters.console import run_console, to_request
from bot.core.values import UserError
from bot.core.registry import load_commands

COMMANDS = load_commands()
parse_command_line = COMMANDS.parse


def script(service, *lines: str) -> str:
    out = io.StringIO()
    asyncio.run(run_console(service, io.StringIO("\n".join(lines) + "\n"), out))
    return out.getvalue()


def test_scripted_session_renders_every_reply(seeded_service):
    output = script(seeded_service, "/help", "/sources", "/search interim CEO", "/status",
                    "@digestbot who became interim CEO of OpenAI?", "@digestbot", "/nonsense", "plain words")
    assert "== digestbot commands ==" in output
    assert "What Ilya Saw: In 2014, 2016, 2024, and 2023 <https://www.latent.space/p/what-ilya-saw>" in output
    assert "== Search: interim CEO ==" in output
    assert "**documents:** 5" in output
    assert "Sources:\n[1] Is OpenAI Imploding? <seeds/000_e8e752ce90d85e32.txt>" in output
    assert "Unknown command /nonsense. Try /help." in output
    assert "Type /help for commands" in output
    assert "== digestbot ==\nMention me with a question" in output  # a bare mention: the core's short help


def test_every_registry_command_is_listed_by_help(seeded_service):
    output = script(seeded_service, "/help")
    for cmd in COMMANDS.values():
        assert cmd.usage() in output


def test_command_line_parsing():
    assert parse_command_line("/search who is ceo since:2024-01-01") == (
        "search", {"query": "who is ceo", "since": "2024-01-01"})
    assert parse_command_line('/search "NEAR(a b)" AND') == ("search", {"query": "NEAR(a b) AND"})
    assert parse_command_line("/search 'unbalanced") == ("search", {"query": "'unbalanced"})
    assert parse_command_line("/summary What Ilya Saw") == ("summary", {"document": "What Ilya Saw"})
    assert to_request("   ", COMMANDS) is None
    with pytest.raises(UserError):
        parse_command_line("/sources extra words")


def test_errors_and_help_speak_each_platforms_command_syntax(seeded_service):
    from bot.core.values import Actor, Request, Target

    async def ask_help(platform):
        return await seeded_service.handle(Request("help", {}, Actor("u"), Target(platform, "w", "c")))

    slack, console = asyncio.run(ask_help("slack")), asyncio.run(ask_help("console"))
    assert "`/digestbot search QUERY [DOCUMENT] [SINCE]`" in slack.text
    assert "`/search QUERY [DOCUMENT] [SINCE]`" in console.text
    refused = asyncio.run(seeded_service.handle(
        Request("digest pause", {}, Actor("u", is_admin=False), Target("slack", "w", "c"))))
    assert not refused.ok and refused.text == "/digestbot digest pause is for admins only; nothing was changed."
