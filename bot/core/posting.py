"""The digest posters' shared rule for a run whose message they cannot look for.

After a crash the outbox asks a platform's poster to `find` a run it may have posted already. When the
platform will not show the channel's history (a missing permission), the run counts as posted: a
digest may then be missed once, but is never posted twice. Every poster answers that case with
`counted_as_posted`, so the rule and the reference it records are written once.
"""
from __future__ import annotations

import logging

from bot.core.values import Target

log = logging.getLogger(__name__)

UNVERIFIED = "unverified:"  # the reference recorded for a run counted as posted without seeing it


def counted_as_posted(target: Target, run_key: str, reason: str) -> str:
    """The reference `find` returns when `target`'s history cannot be read (`reason`, one line)."""
    log.warning("cannot read %s to look for digest %s (%s); counting it as posted", target.key, run_key, reason)
    return UNVERIFIED + run_key
