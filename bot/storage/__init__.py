"""Persistence: one repository per aggregate, each owning its schema, migrations and SQL.

Nothing outside this package opens a connection or writes SQL (tests/test_no_sql_outside_storage.py
checks); a second backend replaces the modules here and nothing else.
"""
from bot.storage.database import StoreError
from bot.storage.documents import Tokenizer
from bot.storage.store import Store

__all__ = ["Store", "StoreError", "Tokenizer"]
