"""The command registry: what a command is, which modules define commands, and lookups over them.

Every chat, console and CLI command is a handler marked with `@command` in one of the modules
listed in COMMAND_MODULES (as simonw/llm lists its default plugins). Marking registers nothing:
`load_commands()` imports those modules and collects their marked handlers, in that order, into a
`Registry`, which the Service, the CLI and every adapter read. To add a command, mark a handler in
one of these modules; to add a module of commands, add it to COMMAND_MODULES.

This module imports nothing from the core but its value types, so any module can use it.
"""
from __future__ import annotations

import functools
import importlib
import shlex
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.values import Reply, Request, UserError

if TYPE_CHECKING:
    from bot.core.service import Service

Handler = Callable[["Service", Request], Awaitable[Reply]]

COMMAND_MODULES = ("bot.core.commands", "bot.core.digest", "bot.core.fetch", "bot.core.feeds")
# Descriptions of command groups, for platforms that register a group as one command (Discord).
GROUPS = {
    "digest": "Scheduled digests of what is new for this channel",
    "feed": "RSS and Atom feeds the bot follows",
}
_SPEC = "__command__"  # the attribute `@command` sets on a handler


@dataclass(frozen=True)
class Param:
    name: str
    help: str
    required: bool = True
    autocomplete: str | None = None  # "documents": offer indexed document titles
    greedy: bool = False  # typed as free text: takes all remaining words of a command line


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Handler
    params: tuple[Param, ...] = ()
    admin: bool = False
    slow: bool = False  # may touch the model: adapters acknowledge first, answer later
    admin_aware: bool = False  # open to all, but an admin's call does more: adapters must say who is an admin
    accepts_file: bool = False  # a file sent with the command is indexed instead (Service.upload): params optional
    shareable: bool = True  # a privately shown reply may be posted to the channel by re-running it

    @property
    def group(self) -> str | None:
        return self.name.split(" ", 1)[0] if " " in self.name else None

    @property
    def leaf(self) -> str:
        return self.name.rsplit(" ", 1)[-1]

    def usage(self, platform: str = "console") -> str:
        args = " ".join(p.name.upper() if p.required else f"[{p.name.upper()}]" for p in self.params)
        return f"{command_prefix(platform)}{self.name}" + (f" {args}" if args else "")


def command_prefix(platform: str) -> str:
    """How a person types a command there: Slack has one `/digestbot` command with subcommands."""
    return "/digestbot " if platform == "slack" else "/"


def command(name: str, *params: Param, admin: bool = False, slow: bool = False, admin_aware: bool = False,
            accepts_file: bool = False, shareable: bool | None = None
            ) -> Callable[[Handler], Handler]:
    """Mark a handler as the command `name`; its docstring's first line is the command's help text.

    Admin commands are not shareable unless `shareable` says so: their replies are for admins."""

    def mark(handler: Handler) -> Handler:
        help_text = (handler.__doc__ or name).strip().splitlines()[0]
        share = not admin if shareable is None else shareable
        setattr(handler, _SPEC, Command(name, help_text, handler, params, admin, slow, admin_aware,
                                        accepts_file, share))
        return handler

    return mark


class Registry(Mapping[str, Command]):
    """The commands by name, in the order their modules define them; read-only once built."""

    def __init__(self, commands: list[Command]):
        self._commands: dict[str, Command] = {}
        for cmd in commands:
            if cmd.name in self._commands:
                raise ValueError(f"command {cmd.name!r} defined twice")
            self._commands[cmd.name] = cmd

    @classmethod
    def from_modules(cls, names: tuple[str, ...]) -> "Registry":
        """The handlers marked in the modules `names` (not those they import), in definition order."""
        return cls([getattr(value, _SPEC) for name in names
                    for value in vars(importlib.import_module(name)).values()
                    if isinstance(getattr(value, _SPEC, None), Command) and value.__module__ == name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._commands)

    def __len__(self) -> int:
        return len(self._commands)

    def __getitem__(self, name: str) -> Command:
        return self._commands[name]

    def validate(self, request: Request) -> Command:
        """The command a request names, with required args present and unknown args refused."""
        platform = request.target.platform
        prefix = command_prefix(platform)
        cmd = self.get(request.command)
        if cmd is None:
            raise UserError(f"Unknown command {prefix}{request.command}. Try {prefix}help.")
        known = {p.name for p in cmd.params}
        unknown = sorted(set(request.args) - known)
        if unknown:
            raise UserError(f"{prefix}{cmd.name} takes no {', '.join(unknown)}. Usage: {cmd.usage(platform)}")
        missing = [p.name for p in cmd.params if p.required and not (request.args.get(p.name) or "").strip()]
        if missing:
            raise UserError(f"{prefix}{cmd.name} needs {', '.join(missing)}. Usage: {cmd.usage(platform)}")
        if cmd.admin and not request.actor.is_admin:
            raise UserError(f"{prefix}{cmd.name} is for admins only; nothing was changed.")
        return cmd

    def parse(self, line: str) -> tuple[str, dict[str, str]]:
        """`/search who is ceo document:000` -> ("search", {"query": "who is ceo", "document": "000"}).

        The longest command name wins ("digest schedule" over "digest"); `name:value` tokens set a
        param by name; other tokens fill params in order, a greedy param taking the rest.
        """
        text = line.strip().lstrip("/").strip()
        try:
            tokens = shlex.split(text)
        except ValueError:  # unbalanced quotes: take the words as typed
            tokens = text.split()
        for size in (2, 1):
            name = " ".join(tokens[:size]).lower()
            if len(tokens) >= size and name in self._commands:
                cmd, rest = self._commands[name], tokens[size:]
                break
        else:
            raise UserError(f"Unknown command /{' '.join(tokens[:2])[:60]}. Try /help.")
        names = {p.name for p in cmd.params}
        args: dict[str, str] = {}
        positional = []
        for token in rest:
            key, sep, value = token.partition(":")
            if sep and key in names and value:
                args[key] = value
            else:
                positional.append(token)
        for param in cmd.params:
            if not positional:
                break
            if param.name in args:
                continue
            if param.greedy:
                args[param.name], positional = " ".join(positional), []
            else:
                args[param.name] = positional.pop(0)
        if positional:
            raise UserError(f"Too many arguments. Usage: {cmd.usage()}")
        return cmd.name, args


@functools.cache
def load_commands(modules: tuple[str, ...] = COMMAND_MODULES) -> Registry:
    """The registry of the commands defined in `modules` (built once per tuple of modules)."""
    return Registry.from_modules(modules)
