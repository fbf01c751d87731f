"""The CLI end to end, in-process: real argument parsing, real database, real models."""
import json

import pytest

from bot.cli import main
from tests.test_retrieve import HOSTILE


@pytest.fixture
def cli(seeded_service, settings, monkeypatch, capsys):
    monkeypatch.setenv("DIGESTBOT_DB", settings.db_path)

    def run(*argv):
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_sources_json_has_stable_fields(cli):
    code, out, _ = cli("sources", "--json")
    docs = json.loads(out)["documents"]
    assert code == 0 and len(docs) == 5
    assert {"doc_id", "title", "path", "url", "published", "language", "chars"} <= set(docs[0])
    paths = {d["path"] for d in docs}
    assert "seeds/000_e8e752ce90d85e32.txt" in paths
    latent = next(d for d in docs if d["path"].startswith("seeds/002"))
    assert latent["url"] == "https://www.latent.space/p/what-ilya-saw"
    assert all(d["url"] is None for d in docs if d is not latent)


def test_search_json(cli):
    code, out, _ = cli("search", "interim", "CEO", "--json")
    data = json.loads(out)
    assert code == 0 and data["query"] == "interim CEO"
    first = data["results"][0]
    assert {"doc_id", "title", "path", "url", "snippet", "score"} <= set(first)


@pytest.mark.parametrize("query", HOSTILE + ["", "a" * 10_000])
def test_hostile_queries_through_cli(cli, query):
    code, out, err = cli("search", "--json", "--", query)  # `--`: a query may start with "-"
    assert "Traceback" not in out + err
    data = json.loads(out)
    if code == 0:
        assert isinstance(data["results"], list)
    else:
        assert len(data["error"].splitlines()) == 1


def test_unknown_document_filter_is_a_clear_error(cli):
    code, out, err = cli("search", "OpenAI", "--document", "no-such-doc")
    assert code == 1 and "No indexed document matches" in err and "Traceback" not in err


def test_index_prints_one_line_count(cli, tmp_path):
    (tmp_path / "note.md").write_text("# Note\n\nA short note about digests and bots.\n")
    code, out, _ = cli("index", str(tmp_path), "--no-embed")
    assert code == 0 and out.strip() == "Indexed: 1 added, 0 updated, 0 unchanged, 0 removed (1 passages)"
