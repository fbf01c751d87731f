"""Posting to Slack channels: digests and mention answers, paced per channel, honouring Retry-After.

The outbox calls `SlackPoster.post` and, after a crash, `find` (a digest's run key travels in its
first message's metadata). Rendering is render_slack's.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.render_slack import SlackMessage, render
from bot.core.values import PostError, Reply, Target
from bot.core.posting import counted_as_posted

POST_ATTEMPTS = 3
DIGEST_METADATA = "digestbot_digest"  # message metadata event type carrying a digest's run key
FIND_LIMIT = 200  # recent channel messages searched for a digest's run key
MAX_RETRY_AFTER = 30.0  # a longer Retry-After is handed back to the outbox as PostError(retry_after=...)
# chat.postMessage errors that retrying cannot fix.
PERMANENT_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "invalid_blocks", "no_text",
    "restricted_action", "invalid_auth", "not_authed", "account_inactive", "token_revoked", "missing_scope",
})


class ChannelPacer:
    """About one message per `interval` seconds per channel: Slack's chat.postMessage limit."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._free_at: dict[str, float] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @contextlib.asynccontextmanager
    async def turn(self, channel: str) -> AsyncIterator[None]:
        async with self._locks[channel]:
            delay = self._free_at.get(channel, 0.0) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                yield
            finally:
                self._free_at[channel] = max(self._free_at.get(channel, 0.0), time.monotonic() + self.interval)

    def hold(self, channel: str, seconds: float) -> None:
        """Keep the channel quiet for `seconds` (Slack's Retry-After)."""
        self._free_at[channel] = time.monotonic() + seconds


class SlackPoster:
    """Posts messages to channels (digests, mention answers): paced per channel, honouring
    Retry-After; failures raise PostError, `permanent` when retrying cannot help."""

    def __init__(self, app: AsyncApp, pacer: ChannelPacer | None = None):
        self.app = app
        self.pacer = pacer or ChannelPacer()

    async def post(self, target: Target, reply: Reply) -> str:
        """The outbox's entry point; returns the timestamp of the first message posted. A digest's run
        key travels in the first message's metadata, so that `find` can recognise it later."""
        client = await self._client_for(target.workspace)
        run = (reply.data or {}).get("run")
        metadata = {"event_type": DIGEST_METADATA, "event_payload": {"run": run}} if run else None
        return await self.send(client, target.channel, render(reply), thread_ts=target.thread, metadata=metadata)

    async def find(self, target: Target, run_key: str) -> str | None:
        """For the outbox's crash recovery: the ts of a digest run already in the channel, None when the
        recent history has none. When the history cannot be read the run counts as posted
        (bot.core.posting)."""
        client = await self._client_for(target.workspace)
        try:
            history = await client.conversations_history(channel=target.channel, limit=FIND_LIMIT,
                                                         include_all_metadata=True)
        except SlackApiError as exc:
            return counted_as_posted(target, run_key, str(exc.response.get("error")))
        for message in history.get("messages", []):
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == DIGEST_METADATA and payload.get("run") == run_key:
                return str(message["ts"])
        return None

    async def send(self, client: AsyncWebClient, channel: str, messages: Sequence[SlackMessage],
                   thread_ts: str | None = None, metadata: dict | None = None) -> str:
        refs = [await self._send_one(client, channel, m, thread_ts, metadata if i == 0 else None)
                for i, m in enumerate(messages)]
        return refs[0]

    async def _send_one(self, client: AsyncWebClient, channel: str, message: SlackMessage, thread_ts: str | None,
                        metadata: dict | None) -> str:
        for attempt in range(1, POST_ATTEMPTS + 1):
            async with self.pacer.turn(channel):
                try:
                    response = await client.chat_postMessage(channel=channel, thread_ts=thread_ts, metadata=metadata,
                                                             **message.kwargs())
                    return str(response["ts"])
                except SlackApiError as exc:
                    error = exc.response.get("error") or f"HTTP {exc.response.status_code}"
                    if exc.response.status_code != 429:
                        permanent = error in PERMANENT_ERRORS
                        raise PostError(f"Slack refused the message: {error}", permanent=permanent) from exc
                    retry_after = float(exc.response.headers.get("Retry-After", 1))
                    if retry_after > MAX_RETRY_AFTER or attempt == POST_ATTEMPTS:
                        raise PostError("Slack rate limit", retry_after=retry_after) from exc
                    self.pacer.hold(channel, retry_after)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    raise PostError(f"Slack could not be reached: {exc}") from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _client_for(self, team_id: str) -> AsyncWebClient:
        """The app's client, or with OAuth installs the client holding that workspace's bot token."""
        store = self.app.installation_store
        if store is None:
            return self.app.client
        bot = await store.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None:
            raise PostError(f"digestbot is not installed in Slack workspace {team_id}", permanent=True)
        return AsyncWebClient(token=bot.bot_token, base_url=self.app.client.base_url)
