"""`digestbot run`: the configured adapters, the digest scheduler and the folder watcher on one loop."""
from __future__ import annotations

import asyncio
import logging

from bot.config import Settings
from bot.core.service import Service

log = logging.getLogger(__name__)


class RedactSecrets(logging.Filter):
    """Replace configured tokens in every log record, whatever library logs them."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:  # tracebacks can quote a token too
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text


def install_log_redaction(settings: Settings) -> None:
    redactor = RedactSecrets(settings.secrets())
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)


async def run(service: Service, settings: Settings) -> None:
    """Run until cancelled; with no chat tokens configured, the console is the adapter."""
    from bot.core import schedule
    from bot.core.watch import watch_folders

    install_log_redaction(settings)
    adapters = []
    if settings.discord_token:
        from bot.adapters import discord_bot

        adapters.append(discord_bot.run(service, settings))
    if settings.slack_bot_token or settings.slack_client_id:
        from bot.adapters import slack_app

        adapters.append(slack_app.run(service, settings))
    if not adapters:
        from bot.adapters.console import run_console

        log.warning("no DISCORD_TOKEN or Slack credentials set: running the local console")
        adapters.append(run_console(service))
    tasks = [schedule.run(service, settings), watch_folders(service), *adapters]
    await asyncio.gather(*tasks)
