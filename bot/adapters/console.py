"""The local console: the same commands as the chat platforms, typed in a terminal or piped in."""
from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from rich.console import Console

from bot.adapters.render_console import to_rich, to_text
from bot.core.values import Actor, Reply, Request, Target, UserError
from bot.core.registry import Registry
from bot.core.service import Service

PROMPT = "digestbot> "
MENTION = "@digestbot"
CONSOLE_TARGET = Target("console", "local", "console")
LOCAL_ADMIN = Actor("console", "local user", is_admin=True)


class ConsolePoster:
    """Posts digests to `console:NAME` targets by printing them (stdout unless a stream is given)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    async def post(self, target: Target, reply: Reply) -> str:
        stream = self.stream or sys.stdout
        stream.write(f"--- digest for {target.key} ---\n{to_text(reply)}\n\n")
        stream.flush()
        return f"{target.key}#{(reply.data or {}).get('run', '')}"


def to_request(line: str, commands: Registry, target: Target = CONSOLE_TARGET) -> Request | None:
    """A typed `/command args` line -> Request; blank lines -> None."""
    line = line.strip()
    if not line:
        return None
    if not line.startswith("/"):
        raise UserError("Type /help for commands, or @digestbot followed by a question.")
    name, args = commands.parse(line)
    return Request(name, args, LOCAL_ADMIN, target)


async def respond(service: Service, line: str) -> Reply | None:
    """The reply to a typed line: `@digestbot question` is a mention, anything else a command."""
    if line.strip().lower().startswith(MENTION):
        return await service.mention(line.strip()[len(MENTION):], LOCAL_ADMIN, CONSOLE_TARGET)
    try:
        request = to_request(line, service.commands)
    except UserError as exc:
        return Reply(str(exc), ok=False, title="Sorry")
    return await service.handle(request) if request else None


async def run_console(service: Service, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
    """Interactive with a spinner on a terminal; line by line, plain text, when piped. Digests for
    console targets print here too."""
    service.register_poster("console", ConsolePoster(stdout))
    interactive = stdin.isatty()
    console = Console(file=stdout, highlight=False, soft_wrap=not interactive)
    if interactive:
        console.print("digestbot console: /help lists commands, Ctrl-D quits.")
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, _read_line, stdin, PROMPT if interactive else "")
        if line is None or line.strip() in ("/quit", "/exit"):
            break
        if interactive:
            with console.status("working…"):
                reply = await respond(service, line)
        else:
            reply = await respond(service, line)
        if reply is not None:
            if interactive:
                console.print(to_rich(reply))
            else:
                stdout.write(to_text(reply) + "\n\n")
                stdout.flush()


def _read_line(stdin: TextIO, prompt: str) -> str | None:
    if prompt:
        try:
            return input(prompt)
        except EOFError:
            return None
    line = stdin.readline()
    return line if line else None
