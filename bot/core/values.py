"""Platform-neutral value types shared by the core, the summarizer and every adapter."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Actor:
    """Who sent a request. Adapters decide `is_admin` (Manage Server, workspace admin, console)."""

    id: str
    name: str = ""
    is_admin: bool = False


@dataclass(frozen=True)
class Target:
    """Where a request came from and where its reply (or a digest) goes."""

    platform: str  # "console" | "discord" | "slack"
    workspace: str  # guild id, team id, "local"
    channel: str  # channel id or console target name
    thread: str | None = None

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.workspace}:{self.channel}"

    @classmethod
    def parse(cls, text: str) -> "Target":
        """`console:NAME`, `discord:GUILD:CHANNEL` or `slack:TEAM:CHANNEL`."""
        parts = text.split(":")
        if len(parts) == 2 and parts[0] == "console" and parts[1]:
            return cls("console", "local", parts[1])
        if len(parts) == 3 and all(parts) and parts[0] in ("console", "discord", "slack"):
            return cls(*parts)
        raise ValueError(f"bad target {text!r}: use console:NAME, discord:GUILD:CHANNEL or slack:TEAM:CHANNEL")


@dataclass(frozen=True)
class Request:
    """A command invocation: `command` is a registry name such as "search" or "digest schedule"."""

    command: str
    args: dict[str, str]
    actor: Actor
    target: Target


@dataclass(frozen=True)
class Document:
    id: str
    path: str
    title: str
    language: str
    content_hash: str
    chars: int
    url: str | None = None
    published: str | None = None
    added_at: str | None = None

    @property
    def link(self) -> str:
        """What a citation points at: the URL when known, else the indexed file path."""
        return self.url or self.path


@dataclass(frozen=True)
class Passage:
    id: int
    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A passage found by search, with its fused score and the document it belongs to."""

    passage: Passage
    document: Document
    score: float
    before: Passage | None = None  # the passage before it in its document, when the answer needs its section


@dataclass(frozen=True)
class Source:
    """A numbered citation: `[n]` in a reply's text refers to the source with this `n`."""

    n: int
    doc_id: str
    title: str
    path: str
    url: str | None
    quote: str
    passage_id: int | None = None

    @property
    def link(self) -> str:
        """What the citation points at: the URL when known, else the indexed file path."""
        return self.url or self.path


@dataclass(frozen=True)
class DigestItem:
    doc_id: str
    title: str
    link: str
    url: str | None
    path: str
    summary: str
    published: str | None = None


@dataclass
class Reply:
    """What every command returns: markdown with `[n]` markers plus structured parts.

    `text` uses only **bold**, _italic_, `code` and line breaks; never links or mentions:
    renderers build links from `sources`/`items` and escape everything relayed.
    """

    text: str
    sources: list[Source] = field(default_factory=list)
    title: str | None = None
    items: list[DigestItem] = field(default_factory=list)
    ok: bool = True
    data: dict[str, Any] | None = None


class UserError(Exception):
    """Bad input from a person: shown as a short reply; nothing was changed."""


class PostError(Exception):
    """A platform refused or failed a post; `retry_after` seconds when it said so."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent
