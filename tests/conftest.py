"""Shared fixtures: real SQLite files in tmp dirs, the real packaged models, the real seeds."""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bot.config import Settings  # noqa: E402
from bot.core.ingest import index_paths  # noqa: E402
from bot.core.service import Service  # noqa: E402
from bot.core.store import Store  # noqa: E402
from summarizer import Models  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


@pytest.fixture(scope="session")
def models() -> Models:
    """One set of lazily loaded real models for the whole run (loading is the slow part)."""
    return Models.from_settings(Settings.from_env({}))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return dataclasses.replace(Settings.from_env({}), db_path=str(tmp_path / "digestbot.db"), docs=(str(SEEDS),))


@pytest.fixture
def store(settings: Settings):
    store = Store.open(settings.db_path)
    yield store
    store.close()


@pytest.fixture
def service(settings: Settings, models: Models):
    """A service over an empty database."""
    service = Service(settings, Store.open(settings.db_path), models)
    yield service
    service.close()


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory, models: Models) -> Path:
    """The seeds indexed and embedded once per session; tests get copies."""
    path = tmp_path_factory.mktemp("seeded") / "seeded.db"
    settings = dataclasses.replace(Settings.from_env({}), db_path=str(path))
    service = Service(settings, Store.open(path), models)
    index_paths(service.store, [SEEDS])
    service.embed_missing()
    service.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    service.close()
    return path


@pytest.fixture
def seeded_service(seeded_db: Path, settings: Settings, models: Models):
    shutil.copy(seeded_db, settings.db_path)
    service = Service(settings, Store.open(settings.db_path), models)
    yield service
    service.close()
