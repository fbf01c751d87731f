"""`digestbot` command line: index, console and run, plus every registry command as a subcommand."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence

from bot.config import Settings
from bot.adapters.console import ConsolePoster
from bot.core.ingest import IndexReport, index_paths
from bot.core.values import Actor, Reply, Request, Target, UserError
from bot.core.registry import Command, load_commands
from bot.core.service import Service, open_service
from bot.core.store import StoreError

# CLI spellings of registry commands (`digestbot summarize DOC` runs /summary).
CLI_NAMES = {"summary": "summarize"}
CLI_ACTOR = Actor("cli", "command line", is_admin=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digestbot", description="Index, search, summarize and digest documents.")
    sub = parser.add_subparsers(dest="cli_command", required=True, metavar="COMMAND")
    index = sub.add_parser("index", help="Index files and folders (default: DIGESTBOT_DOCS, i.e. seeds/).")
    index.add_argument("paths", nargs="*", help="files or folders (.txt, .md, .html)")
    index.add_argument("--no-embed", action="store_true", help="skip computing embeddings (BM25 only)")
    console = sub.add_parser("console", help="Index the document folders, then open the local console.")
    console.add_argument("--no-index", action="store_true", help="open the console without indexing first")
    sub.add_parser("run", help="Run the configured chat adapters and the digest scheduler.")
    groups: dict[str, argparse._SubParsersAction] = {}
    for cmd in load_commands().values():
        if cmd.group:
            if cmd.group not in groups:
                group = sub.add_parser(cmd.group, help=f"{cmd.group} commands")
                groups[cmd.group] = group.add_subparsers(dest="cli_leaf", required=True, metavar="ACTION")
            _add_command(groups[cmd.group], cmd.leaf, cmd)
        else:
            _add_command(sub, CLI_NAMES.get(cmd.name, cmd.name), cmd)
    return parser


def _add_command(sub: argparse._SubParsersAction, name: str, cmd: Command) -> None:
    """Required params are positional; optional ones too (`digest schedule TIME [TZ] [DAYS]`)
    unless a free-text param takes the rest of the line, then they are `--name` options."""
    aliases = [cmd.name] if CLI_NAMES.get(cmd.name) == name else []
    parser = sub.add_parser(name, aliases=aliases, help=cmd.help, description=cmd.help)
    parser.set_defaults(registry_command=cmd.name)
    free_text = any(p.greedy for p in cmd.params)
    for param in cmd.params:
        if param.required:
            parser.add_argument(param.name, nargs="+" if param.greedy else None, help=param.help)
        elif free_text:
            parser.add_argument(f"--{param.name}", help=param.help)
        else:
            parser.add_argument(param.name, nargs="?", help=param.help)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--target", default="console:cli", help="where replies and digests go (console:NAME, ...)")


def _progress(description: str):
    """A rich progress bar over an iterable, on stderr so --json output stays clean."""
    from rich.progress import track

    return lambda items: track(list(items), description=description, console=_stderr_console(), transient=True)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def index_and_embed(service: Service, paths: Sequence[str], embed: bool = True) -> IndexReport:
    report = index_paths(service.store, paths or service.settings.docs, progress=_progress("Indexing"),
                         added_at=service.timestamp())
    if embed:
        missing = len(service.store.missing_embeddings(service.models.encoder_id))
        if missing:
            from rich.progress import Progress

            with Progress(console=_stderr_console(), transient=True) as bar:
                task = bar.add_task("Embedding passages", total=missing)
                service.embed_missing(progress=lambda n: bar.advance(task, n))
    return report


def run_registry_command(service: Service, args: argparse.Namespace) -> int:
    cmd = service.commands[args.registry_command]
    values = {}
    for param in cmd.params:
        value = getattr(args, param.name, None)
        if value is not None:
            values[param.name] = " ".join(value) if isinstance(value, list) else value
    target = Target.parse(args.target)
    # digests posted to console targets print on stdout, or stderr when stdout carries JSON
    service.register_poster("console", ConsolePoster(sys.stderr if args.json else sys.stdout))
    if cmd.name == "ask" and values["question"] == "-":
        return ask_each_line(service, target, args.json)
    request = Request(cmd.name, values, CLI_ACTOR, target)
    if cmd.slow and sys.stderr.isatty():  # model work can take a while: show that it is under way
        with _stderr_console().status(f"{cmd.name}…"):
            reply = asyncio.run(service.handle(request))
    else:
        reply = asyncio.run(service.handle(request))
    print_reply(reply, request, args.json, indent=2)
    return 0 if reply.ok else 1


def ask_each_line(service: Service, target: Target, as_json: bool) -> int:
    """`digestbot ask -`: one question per stdin line, all answered by one service (models load once).

    With --json each answer is one JSON line (JSON Lines), flushed as soon as it is ready; a line the
    command refuses gets {"question", "error"} and the next line is read. Blank lines are skipped.
    """
    for raw in sys.stdin.buffer:  # bytes: a line of invalid UTF-8 is one bad question, not a crash
        question = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if question.strip():
            request = Request("ask", {"question": question}, CLI_ACTOR, target)
            print_reply(asyncio.run(service.handle(request)), request, as_json)
    return 0


def print_reply(reply: Reply, request: Request, as_json: bool, indent: int | None = None) -> None:
    """A reply as JSON (its data, or the request's args with the error) or as console text."""
    if as_json:
        data = reply.data if reply.ok and reply.data is not None else {**request.args, "error": reply.text}
        print(json.dumps(data, ensure_ascii=False, indent=indent), flush=True)
    else:
        from bot.adapters.render_console import to_text

        print(to_text(reply), file=sys.stdout if reply.ok else sys.stderr, flush=True)


def run() -> None:
    """The `digestbot` program. Process-wide settings live here, not in `main`, which tests call in-process."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `digestbot search x | head` ends quietly
    raise SystemExit(main())


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        service = open_service(settings)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        if args.cli_command == "index":
            report = index_and_embed(service, args.paths, embed=not args.no_embed)
            for error in report.errors:
                print(f"skipped: {error}", file=sys.stderr)
            print(f"Indexed: {report.line()}")
            return 0
        if args.cli_command == "console":
            from bot.adapters.console import run_console

            if not args.no_index:
                print(f"Indexed: {index_and_embed(service, settings.docs).line()}", file=sys.stderr)
            asyncio.run(run_console(service))
            return 0
        if args.cli_command == "run":
            from bot.adapters.runner import run

            asyncio.run(run(service, settings))
            return 0
        return run_registry_command(service, args)
    except (UserError, StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        service.close()
