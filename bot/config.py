"""Settings, read once from the environment (and `.env`) and passed down: no globals."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from dotenv import dotenv_values


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.replace(";", ",").split(",") if part.strip())


def _int(value: str | None, default: int | None) -> int | None:
    return int(value) if value not in (None, "") else default


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    db_path: str = "digestbot.db"
    docs: tuple[str, ...] = ("seeds",)
    language: str = "English"
    timezone: str = "UTC"
    encoder: str = "e5"
    summary_encoder: str = "minilm"
    summarizer_model: str | None = None
    summarizer_url: str | None = None
    summarizer_api_key: str | None = None
    model_threads: int = 2
    allow_private_urls: bool = False
    add_policy: str = "everyone"
    feed_minutes: int = 30
    discord_token: str | None = None
    discord_guild_id: str | None = None
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    discord_shards: int | None = None
    slack_bot_token: str | None = None
    slack_app_token: str | None = None
    slack_signing_secret: str | None = None
    slack_port: int = 3000
    slack_api_url: str | None = None
    slack_client_id: str | None = None
    slack_client_secret: str | None = None
    slack_admins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, dotenv: str | Path | None = ".env") -> "Settings":
        """Explicit `env` wins; otherwise the process environment over `.env` values."""
        if env is None:
            file_values = dotenv_values(dotenv) if dotenv and Path(dotenv).is_file() else {}
            env = {**{k: v for k, v in file_values.items() if v is not None}, **os.environ}
        get = lambda name: (env.get(name) or None)  # noqa: E731 - empty strings count as unset
        return cls(
            db_path=get("DIGESTBOT_DB") or cls.db_path,
            docs=_split(get("DIGESTBOT_DOCS") or "") or cls.docs,
            language=get("DIGESTBOT_LANGUAGE") or cls.language,
            timezone=get("DIGESTBOT_TIMEZONE") or cls.timezone,
            encoder=get("DIGESTBOT_ENCODER") or cls.encoder,
            summary_encoder=get("DIGESTBOT_SUMMARY_ENCODER") or cls.summary_encoder,
            summarizer_model=get("SUMMARIZER_MODEL"),
            summarizer_url=get("SUMMARIZER_URL"),
            summarizer_api_key=get("SUMMARIZER_API_KEY"),
            model_threads=_int(get("DIGESTBOT_MODEL_THREADS"), cls.model_threads),
            allow_private_urls=_flag(get("DIGESTBOT_ALLOW_PRIVATE_URLS")),
            add_policy=(get("DIGESTBOT_ADD") or cls.add_policy).strip().lower(),
            feed_minutes=_int(get("DIGESTBOT_FEED_MINUTES"), cls.feed_minutes),
            discord_token=get("DISCORD_TOKEN"),
            discord_guild_id=get("DISCORD_GUILD_ID"),
            discord_api_base=get("DISCORD_API_BASE"),
            discord_gateway_url=get("DISCORD_GATEWAY_URL"),
            discord_shards=_int(get("DISCORD_SHARDS"), None),
            slack_bot_token=get("SLACK_BOT_TOKEN"),
            slack_app_token=get("SLACK_APP_TOKEN"),
            slack_signing_secret=get("SLACK_SIGNING_SECRET"),
            slack_port=_int(get("SLACK_PORT"), cls.slack_port),
            slack_api_url=get("SLACK_API_URL"),
            slack_client_id=get("SLACK_CLIENT_ID"),
            slack_client_secret=get("SLACK_CLIENT_SECRET"),
            slack_admins=_split(get("SLACK_ADMINS") or ""),
        )

    def secrets(self) -> list[str]:
        """Values that must never appear in logs."""
        names = ("discord_token", "slack_bot_token", "slack_app_token", "slack_signing_secret",
                 "slack_client_secret", "summarizer_api_key")
        return [value for f in fields(self) if f.name in names and (value := getattr(self, f.name))]
