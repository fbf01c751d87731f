"""Persistence has one home: no module under bot/, summarizer/ or bench/ outside bot/storage runs SQL or
holds a database connection, so a second storage backend replaces bot/storage and nothing else."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORAGE = ROOT / "bot" / "storage"
# what running SQL looks like: a cursor call, the statements, a query given as a string (an encoder's
# `model.query(texts)` is not SQL), an SQLite driver
SQL = re.compile(r"\.execute(many|script)?\(|\bSELECT\s|\bINSERT\s|\bUPDATE\s+\w+\s+SET\b|\bDELETE FROM\b|"
                 r"\bCREATE (VIRTUAL )?TABLE\b|\.query\(\s*f?[\"']|\bsqlite3\b|\bsqlite_utils\b")


def sql_lines(paths: list[Path]) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for path in paths
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if SQL.search(line)]


def test_no_sql_outside_the_storage_package():
    paths = [p for folder in ("bot", "summarizer", "bench") for p in sorted((ROOT / folder).rglob("*.py"))
             if STORAGE not in p.parents]
    assert len(paths) > 20  # the walk found the code
    assert sql_lines(paths) == []


def test_the_check_sees_sql_where_there_is_some():
    """The same check over the storage package finds its queries (the pattern is not blind)."""
    found = sql_lines(sorted(STORAGE.rglob("*.py")))
    assert any("SELECT" in line for line in found) and any("INSERT" in line for line in found)
    assert any("sqlite_utils" in line for line in found)
