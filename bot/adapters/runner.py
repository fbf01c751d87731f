"""`digestbot run`: the configured adapters, the digest scheduler and the folder watcher on one loop."""
from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable

from bot.config import Settings
from bot.core.service import Service

log = logging.getLogger(__name__)

# The chat platforms `digestbot run` starts: an adapter module with `async run(service, settings)`,
# imported only when the settings configure it. A new platform is one more line here.
PLATFORMS: tuple[tuple[str, Callable[[Settings], bool]], ...] = (
    ("bot.adapters.discord_bot", lambda settings: bool(settings.discord_token)),
    ("bot.adapters.slack_app", lambda settings: bool(settings.slack_bot_token or settings.slack_client_id)),
)


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
    adapters = [importlib.import_module(module).run(service, settings)
                for module, configured in PLATFORMS if configured(settings)]
    if not adapters:
        from bot.adapters.console import run_console

        log.warning("no DISCORD_TOKEN or Slack credentials set: running the local console")
        adapters.append(run_console(service))
    tasks = [schedule.run(service, settings), watch_folders(service), *adapters]
    await asyncio.gather(*tasks)
