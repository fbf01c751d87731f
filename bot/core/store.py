"""The core's name for persistence: the Store facade and its errors, from the storage package (bot/storage)."""
from bot.storage import Store, StoreError, Tokenizer

__all__ = ["Store", "StoreError", "Tokenizer"]
