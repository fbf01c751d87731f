"""The CLI end to end, in-process and as a subprocess: real argument parsing, real database, real models."""
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

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


def test_main_leaves_the_process_signal_handlers_alone(cli):
    """In-process callers (these tests, the bot) keep Python's SIGPIPE handling: a write to a closed socket
    is an error to handle, not the death of the process. Only the `digestbot` program resets it."""
    before = signal.getsignal(signal.SIGPIPE)
    assert cli("sources")[0] == 0
    assert signal.getsignal(signal.SIGPIPE) == before == signal.SIG_IGN


def test_index_prints_one_line_count(cli, tmp_path):
    (tmp_path / "note.md").write_text("# Note\n\nA short note about digests and bots.\n")
    code, out, _ = cli("index", str(tmp_path), "--no-embed")
    assert code == 0 and out.strip() == "Indexed: 1 added, 0 updated, 0 unchanged, 0 removed (1 passages)"


# -- `digestbot ask --json -`: a real subprocess reading questions from stdin -------------------------
ROOT = Path(__file__).resolve().parent.parent
ASK_FIELDS = ["question", "answer", "short", "abstained", "sources"]
SOURCE_FIELDS = ["n", "doc_id", "title", "path", "url", "quote"]
# Imported at interpreter start (PYTHONPATH): counts e5 loads and reports them on exit.
COUNT_LOADS = """
import atexit, sys
from summarizer import encoder
loads = []
load = encoder.E5Encoder.__init__
def counted(self, *args, **kwargs):
    loads.append(1)
    load(self, *args, **kwargs)
encoder.E5Encoder.__init__ = counted
atexit.register(lambda: print(f"e5 loads: {len(loads)}", file=sys.stderr))
"""


@pytest.fixture
def ask_stdin(seeded_service, settings, tmp_path):
    """`python -m bot ask --json -` over a copy of the seeded database, e5 loads counted."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(COUNT_LOADS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUMMARIZER_")}
    env.update(DIGESTBOT_DB=settings.db_path, PYTHONPATH=str(tmp_path / "site"), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "ask", "--json", "-"], cwd=tmp_path, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    yield proc
    proc.kill()
    proc.wait()


def read_line(proc: subprocess.Popen, timeout: float = 120) -> dict:
    """The next JSON line, which must come while stdin is still open (so it was flushed)."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no answer line within the timeout: output not flushed per line?"
    return json.loads(proc.stdout.readline())


def test_ask_json_lines_from_stdin(ask_stdin, cli):
    proc = ask_stdin
    proc.stdin.write(b"Who became interim CEO of OpenAI?\n")
    proc.stdin.flush()
    first = read_line(proc)  # answered before the next question is even sent
    proc.stdin.write(b"\n   \n\x01\x02\x1b\x7f\n" + b"why " * 1000 + b"\n\xff\xfe not UTF-8\n"
                     b"What is PaperBench?\r\nWhat is the capital of Australia?\n")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    answered, control, too_long, not_utf8, paperbench, australia = [first, *map(json.loads, out.splitlines())]

    assert list(answered) == ASK_FIELDS and answered["question"] == "Who became interim CEO of OpenAI?"
    assert not answered["abstained"] and "[1]" in answered["answer"]
    assert [list(s) for s in answered["sources"]] == [SOURCE_FIELDS] * len(answered["sources"]) != []
    # refused lines answer with the error and the batch goes on
    assert control == {"question": "\x01\x02\x1b\x7f", "error": "Type something to search for."}
    assert list(too_long) == ["question", "error"] and "Query too long" in too_long["error"]
    assert not_utf8["question"] == "\ufffd\ufffd not UTF-8" and list(not_utf8)[:5] == ASK_FIELDS
    assert paperbench["question"] == "What is PaperBench?" and list(paperbench)[:5] == ASK_FIELDS
    assert list(australia) == ASK_FIELDS + ["closest"] and australia["abstained"] and australia["sources"] == []
    assert australia["closest"] and all(isinstance(doc_id, str) for doc_id in australia["closest"])
    assert "e5 loads: 1" in err.decode()  # one model load for the whole batch

    code, out, _ = cli("ask", "--json", "Who became interim CEO of OpenAI?")  # one question as an argument:
    single = json.loads(out)  # the same object (shape: this process may run an older copy of the code)
    assert code == 0 and list(single) == ASK_FIELDS and single["question"] == answered["question"]
    assert [list(s) for s in single["sources"]] == [SOURCE_FIELDS] * len(single["sources"]) != []


def test_ask_json_error_names_the_question(cli):
    code, out, _ = cli("ask", "--json", "--", "x" * 3000)
    assert code == 1 and list(json.loads(out)) == ["question", "error"]
