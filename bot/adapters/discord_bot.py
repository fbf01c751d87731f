"""The Discord adapter: Discord events -> core Requests, Replies -> Discord messages.

Translation only: slash commands are generated from the core registry, @mentions become `ask`
requests, digests are posted through `DiscordPoster`. Rendering (escaping, links, splitting) is
in `render_discord`. Every reply goes out with no allowed mentions.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Awaitable
from typing import Any, Optional

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.adapters.render_discord import (
    choice_name,
    one_line,
    render,
    render_quote,
    run_key_of,
)
from bot.config import Settings
from bot.core.values import Actor, PostError, Reply, Request, Target, UserError
from bot.core.posting import counted_as_posted
from bot.core.registry import GROUPS, Command
from bot.core.service import Service

log = logging.getLogger(__name__)

DISCORD_API = "https://discord.com/api/v10"
DISCORD_GATEWAY = "wss://gateway.discord.gg/"
ACK_DEADLINE = 2.0  # seconds a fast command may take before we defer (Discord allows 3)
PRIVATE = "private"  # the option every command gets: answer only to the person who asked
FILE = "file"  # the attachment option of commands that accept a file: index it instead (params become optional)
MAX_SOURCE_BUTTONS = 10
DESCRIPTION_LIMIT = 100  # Discord's limit for command and option descriptions
READY_TIMEOUT = 30.0  # how long a digest post waits for the gateway connection
FIND_LIMIT = 100  # recent channel messages searched for a digest's run key (one history request)


def use_endpoints(api_base: str | None, gateway_url: str | None) -> None:
    """Point discord.py at another REST base / gateway (tests, proxies); None means Discord's own.

    discord.py has no per-client setting for these: every REST request (including interaction
    webhooks) builds its URL from `Route.BASE`, and the first gateway connection uses
    `DiscordWebSocket.DEFAULT_GATEWAY`. So this one function sets both, every time a bot starts.
    """
    Route.BASE = (api_base or DISCORD_API).rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url or DISCORD_GATEWAY)


# -- persistent buttons: their state lives in custom_id, so they work after a restart -------------
class ShowSource(discord.ui.DynamicItem[discord.ui.Button], template=r"dgb:src:(?P<passage>\d+)"):
    """Shows the cited passage to the person who clicked, privately."""

    def __init__(self, passage_id: int, n: int = 0) -> None:
        super().__init__(discord.ui.Button(label=f"Source {n}", emoji="📄", style=discord.ButtonStyle.secondary,
                                           custom_id=f"dgb:src:{passage_id}"))
        self.passage_id = passage_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str]) -> "ShowSource":
        return cls(int(match["passage"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _guarded(interaction, self._show(interaction))

    async def _show(self, interaction: discord.Interaction) -> None:
        source = _service(interaction).passage_quote(self.passage_id)
        if source is None:
            await interaction.response.send_message("⚠️ That passage is no longer indexed.", ephemeral=True)
            return
        await interaction.response.send_message(**render_quote(source).kwargs(), ephemeral=True)


async def _guarded(interaction: discord.Interaction, action: Awaitable[None]) -> None:
    """Run a button's action; a failure is logged and shown to the person who clicked."""
    try:
        await action
    except Exception:
        log.exception("Discord button %s failed", (interaction.data or {}).get("custom_id"))
        await _error_reply(interaction, "Something went wrong on our side; the error was logged.")


def _service(interaction: discord.Interaction) -> Service:
    return interaction.client.service  # type: ignore[attr-defined]


def reply_view(reply: Reply) -> discord.ui.View | None:
    """The buttons under a reply's last message: one per cited passage, to show it privately."""
    buttons = [ShowSource(s.passage_id, s.n) for s in reply.sources if s.passage_id is not None] if reply.ok else []
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for button in buttons[:MAX_SOURCE_BUTTONS]:
        view.add_item(button)
    return view


def _send_kwargs(reply: Reply) -> list[dict[str, Any]]:
    """Send arguments for each message of a reply, the source buttons on the last."""
    messages = render(reply)
    out = []
    for k, message in enumerate(messages, 1):
        kwargs = message.kwargs()
        view = reply_view(reply) if k == len(messages) else None
        if view is not None:
            kwargs["view"] = view
        out.append(kwargs)
    return out


# -- where a request comes from -------------------------------------------------------------------
def _target(guild_id: int | None, channel: Any, channel_id: int | None) -> Target:
    workspace = str(guild_id) if guild_id else "dm"
    if isinstance(channel, discord.Thread) and channel.parent_id:
        return Target("discord", workspace, str(channel.parent_id), str(channel.id))
    return Target("discord", workspace, str(channel_id or getattr(channel, "id", "")))


def _interaction_request(interaction: discord.Interaction, command: str, args: dict[str, str]) -> Request:
    # Manage Server is checked here, server-side, whatever the command's default permissions say.
    actor = Actor(str(interaction.user.id), interaction.user.display_name,
                  is_admin=interaction.guild_id is not None and interaction.permissions.manage_guild)
    return Request(command, args, actor, _target(interaction.guild_id, interaction.channel, interaction.channel_id))


async def _error_reply(interaction: discord.Interaction, text: str) -> None:
    """Best effort: a short private note to the person, whatever state the interaction is in."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(f"⚠️ {text}", ephemeral=True)
        else:
            await interaction.response.send_message(f"⚠️ {text}", ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not report an error to Discord: %s", exc)


class _DigestBot:
    """What a digestbot client adds to discord.py's: the service, commands, mentions, buttons."""

    def __init__(self, service: Service, settings: Settings, **options: Any) -> None:
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.dm_messages = True  # no message-content intent
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none(),  # type: ignore[call-arg]
                         max_ratelimit_timeout=30.0, **options)
        self.service = service
        self.settings = settings
        self.tree = app_commands.CommandTree(self)  # type: ignore[arg-type]
        self.tree.on_error = self._on_command_error  # type: ignore[method-assign]
        for command in self.app_commands():
            self.tree.add_command(command)

    # -- slash commands generated from the registry -------------------------------------------
    def app_commands(self) -> list[app_commands.Command | app_commands.Group]:
        """One app command per registry entry; "digest x" entries become subcommands of a group.

        Discord keeps default permissions per top-level command only, so a group with any admin
        subcommand is declared Manage Server as a whole (server admins can open it to more roles
        under Server Settings > Integrations); the core still checks each admin command itself.
        """
        groups: dict[str, app_commands.Group] = {}
        for name in dict.fromkeys(c.group for c in self.service.commands.values() if c.group):
            members = [c for c in self.service.commands.values() if c.group == name]
            admin = any(c.admin for c in members)
            groups[name] = app_commands.Group(
                name=name, description=one_line(GROUPS[name], DESCRIPTION_LIMIT),
                guild_only=admin, default_permissions=discord.Permissions(manage_guild=True) if admin else None)
        top = [self._slash_command(cmd, groups.get(cmd.group or "")) for cmd in self.service.commands.values()]
        return [slash for slash in top if slash.parent is None] + list(groups.values())

    def _slash_command(self, cmd: Command, group: app_commands.Group | None) -> app_commands.Command:
        async def callback(interaction: discord.Interaction, **values: Any) -> None:
            private = values.pop(PRIVATE, True)
            upload = values.pop(FILE, None)
            args = {k: v for k, v in values.items() if v is not None}
            await self._answer(interaction, cmd, args, private=private, upload=upload)

        if any(p.name in (PRIVATE, FILE) for p in cmd.params):
            raise ValueError(f"/{cmd.name}: a parameter may not be called {PRIVATE!r} or {FILE!r}")
        uploads = cmd.accepts_file
        kw = inspect.Parameter.KEYWORD_ONLY
        signature = [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                       annotation=discord.Interaction)]
        signature += [inspect.Parameter(p.name, kw, annotation=str) if p.required and not uploads
                      else inspect.Parameter(p.name, kw, annotation=Optional[str], default=None)
                      for p in cmd.params]
        if uploads:
            signature.append(inspect.Parameter(FILE, kw, annotation=Optional[discord.Attachment], default=None))
        signature.append(inspect.Parameter(PRIVATE, kw, annotation=bool, default=True))
        callback.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]

        slash = app_commands.Command(name=cmd.leaf, description=one_line(cmd.help, DESCRIPTION_LIMIT),
                                     callback=callback, parent=group)
        descriptions = {p.name: one_line(p.help, DESCRIPTION_LIMIT) for p in cmd.params}
        descriptions[PRIVATE] = "Only you see the reply (default: yes)"
        if uploads:
            descriptions[FILE] = "Or attach a file to index (HTML, PDF, Markdown or text)"
        slash = app_commands.describe(**descriptions)(slash)
        completers = {p.name: self._complete_documents for p in cmd.params if p.autocomplete == "documents"}
        if completers:
            slash = app_commands.autocomplete(**completers)(slash)
        if cmd.admin and group is None:
            slash = app_commands.default_permissions(manage_guild=True)(slash)
        if group is not None:
            group.add_command(slash)
        return slash

    async def _complete_documents(self, interaction: discord.Interaction, current: str
                                  ) -> list[app_commands.Choice[str]]:
        choices = await self.service.document_choices(current, 25)
        return [app_commands.Choice(name=choice_name(title), value=doc_id[:100]) for doc_id, title in choices]

    async def _answer(self, interaction: discord.Interaction, cmd: Command, args: dict[str, str], *,
                      private: bool, upload: discord.Attachment | None = None) -> None:
        """Acknowledge in time, run the command on the core, send the rendered reply.

        Model work is deferred at once (the "is thinking…" indicator); anything else still gets a
        deferral if it has not answered by ACK_DEADLINE, so Discord's 3-second window is never missed.
        """
        if cmd.slow:
            await interaction.response.defer(thinking=True, ephemeral=private)
        task = asyncio.ensure_future(self._run(_interaction_request(interaction, cmd.name, args), cmd, upload))
        if not cmd.slow:
            done, _ = await asyncio.wait({task}, timeout=ACK_DEADLINE)
            if not done:
                await interaction.response.defer(thinking=True, ephemeral=private)
        reply = await task
        for kwargs in _send_kwargs(reply):
            if interaction.response.is_done():
                await interaction.followup.send(**kwargs, ephemeral=private)
            else:
                await interaction.response.send_message(**kwargs, ephemeral=private)

    async def _run(self, request: Request, cmd: Command, upload: discord.Attachment | None) -> Reply:
        """The core's reply: to the command, or for an upload command with a file, to indexing the file."""
        if upload is not None:
            return await add_attachment(self.service, request.actor, upload)
        if cmd.accepts_file and any(p.required and p.name not in request.args for p in cmd.params):
            needs = " or ".join(p.name for p in cmd.params if p.required)
            return Reply(f"/{cmd.name} needs a {needs} or an attached {FILE}.", ok=False, title="Sorry")
        return await self.service.handle(request)

    async def _on_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        log.error("Discord command %s failed", interaction.command and interaction.command.qualified_name,
                  exc_info=error)
        await _error_reply(interaction, "Something went wrong on our side; the error was logged.")

    # -- lifecycle ------------------------------------------------------------------------------
    async def setup_hook(self) -> None:
        self.add_dynamic_items(ShowSource)  # type: ignore[attr-defined]
        if self.settings.discord_guild_id:  # instant, for setup and testing
            guild = discord.Object(int(self.settings.discord_guild_id))
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        else:  # may take a while to show up everywhere
            await self.tree.sync()

    async def on_ready(self) -> None:
        log.info("Discord: connected as %s (%s) to %d server(s)", self.user, self.user and self.user.id,
                 len(self.guilds))  # type: ignore[attr-defined]

    # -- @mentions ------------------------------------------------------------------------------
    async def on_message(self, message: discord.Message) -> None:
        """Answer a message that mentions the bot, in a thread where the channel allows one."""
        me = self.user  # type: ignore[attr-defined]
        if message.author.bot or me is None or not any(u.id == me.id for u in message.mentions):
            return
        question = re.sub(rf"<@!?{me.id}>", " ", message.content).strip()
        try:
            await self._answer_mention(message, question)
        except Exception:
            log.exception("answering a mention in channel %s failed", message.channel.id)
            try:
                await message.reply("⚠️ Something went wrong on our side; the error was logged.")
            except discord.HTTPException as exc:
                log.warning("could not report an error to Discord: %s", exc)

    async def _answer_mention(self, message: discord.Message, question: str) -> None:
        destination: discord.abc.Messageable = message.channel
        reference: discord.Message | None = message
        if question and isinstance(message.channel, discord.TextChannel):
            try:
                destination = await message.create_thread(name=one_line(question, 100))
                reference = None  # the thread starts at the question
            except discord.HTTPException as exc:  # no thread permission: answer in the channel
                log.info("no thread for a mention in %s (%s); replying in the channel", message.channel.id, exc)
        author = message.author
        actor = Actor(str(author.id), author.display_name)
        target = _target(message.guild and message.guild.id, destination, message.channel.id)
        async with destination.typing():
            reply = await self.service.mention(question, actor, target)
        for kwargs in _send_kwargs(reply):
            await destination.send(**kwargs, reference=reference, mention_author=False)  # type: ignore[call-arg]
            reference = None


class DigestBot(_DigestBot, discord.Client):
    pass


class ShardedDigestBot(_DigestBot, discord.AutoShardedClient):
    pass


def build_client(service: Service, settings: Settings) -> DigestBot | ShardedDigestBot:
    if settings.discord_shards:
        return ShardedDigestBot(service, settings, shard_count=settings.discord_shards)
    return DigestBot(service, settings)


class DiscordPoster:
    """Posts scheduled digests for the core's outbox; failures become PostError for it to retry.

    discord.py itself waits out 429s up to 30 s (honouring Retry-After); longer ones arrive as
    `discord.RateLimited` and are handed back with their retry_after.
    """

    def __init__(self, client: discord.Client) -> None:
        self.client = client

    async def _channel(self, target: Target) -> discord.PartialMessageable:
        try:
            await asyncio.wait_for(self.client.wait_until_ready(), READY_TIMEOUT)
        except (asyncio.TimeoutError, RuntimeError):  # RuntimeError: the client has not started yet
            raise PostError("Discord is not connected yet", retry_after=READY_TIMEOUT) from None
        guild_id = int(target.workspace) if target.workspace.isdigit() else None
        return self.client.get_partial_messageable(int(target.thread or target.channel), guild_id=guild_id)

    async def post(self, target: Target, reply: Reply) -> str:
        """Returns the first message's link; a digest's first footer carries its run key (see `find`)."""
        channel = await self._channel(target)
        try:
            sent = [await channel.send(**kwargs) for kwargs in _send_kwargs(reply)]
        except discord.RateLimited as exc:
            raise PostError(f"Discord rate limit on channel {channel.id}", retry_after=exc.retry_after) from None
        except discord.Forbidden as exc:  # a person can grant the permission: keep retrying
            raise PostError(f"missing permission to post in channel {channel.id}: {exc.text}") from None
        except discord.NotFound as exc:
            raise PostError(f"channel {channel.id} not found (deleted?): {exc.text}", permanent=True) from None
        except discord.HTTPException as exc:
            raise PostError(f"Discord refused the post in channel {channel.id}: {exc.status} {exc.text}",
                            permanent=exc.status < 500) from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise PostError(f"could not reach Discord: {exc.__class__.__name__}") from None
        return sent[0].jump_url if sent else ""

    async def find(self, target: Target, run_key: str) -> str | None:
        """For the outbox's crash recovery: the link of a digest run this bot already posted in the
        channel, None when the recent history has none. When the history cannot be read (no Read
        Message History permission) the run counts as posted (bot.core.posting). Other failures
        raise, and the outbox asks again on a later pass."""
        channel = await self._channel(target)
        me = self.client.user
        try:
            async for message in channel.history(limit=FIND_LIMIT):
                if me is not None and message.author.id == me.id and run_key_of(message.embeds) == run_key:
                    return message.jump_url
        except discord.Forbidden as exc:
            return counted_as_posted(target, run_key, exc.text)
        except discord.NotFound:  # the channel is gone, and the digest with it
            return None
        return None


async def add_attachment(service: Service, actor: Actor, attachment: discord.Attachment) -> Reply:
    """Download an attached file for the core to index; the core's upload policy and limits are
    asked first, with the size Discord reports, so nothing is downloaded that would be refused."""
    name = attachment.filename
    try:
        service.check_upload(actor, name, attachment.size)
    except UserError as exc:
        return Reply(str(exc), ok=False, title="Sorry")
    try:
        data = await attachment.read()
    except (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError) as exc:
        log.warning("could not download attachment %s: %s", attachment.id, exc)
        return Reply(f"{name}: the attachment could not be downloaded; not indexed.", ok=False, title="Sorry")
    # The CDN link without its expiring signature: a stable name for the document.
    url = attachment.url.split("?", 1)[0]
    return await service.upload(actor, data, name=name, content_type=attachment.content_type or "", url=url)


async def run(service: Service, settings: Settings) -> None:
    """Connect to Discord and serve until cancelled; registers the digest poster."""
    if not settings.discord_token:
        raise ValueError("DISCORD_TOKEN is not set")
    use_endpoints(settings.discord_api_base, settings.discord_gateway_url)
    client = build_client(service, settings)
    service.register_poster("discord", DiscordPoster(client))
    async with client:
        await client.start(settings.discord_token)
