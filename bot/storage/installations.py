"""Slack workspace installations and OAuth state (multi-workspace installs), kept in the bot's database.

Bolt reads and writes them through slack_sdk's store interfaces; this module decides where they live
(today slack_sdk's own SQLite stores, in the bot's database file), so a second backend swaps them here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

OAUTH_STATE_SECONDS = 600  # how long an "Add to Slack" link stays valid


def slack_oauth_stores(db_path: str | Path, client_id: str) -> tuple[Any, Any]:
    """(installation store, OAuth state store) for Bolt's AsyncOAuthSettings."""
    from slack_sdk.oauth.installation_store.sqlite3 import SQLite3InstallationStore
    from slack_sdk.oauth.state_store.sqlite3 import SQLite3OAuthStateStore

    return (SQLite3InstallationStore(database=str(db_path), client_id=client_id),
            SQLite3OAuthStateStore(database=str(db_path), expiration_seconds=OAUTH_STATE_SECONDS))
