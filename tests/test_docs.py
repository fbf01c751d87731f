"""Docs tested against code: every command is in the README, every setting in .env.example."""
import dataclasses
import re
from pathlib import Path

from bot.config import Settings
from bot.core.registry import load_commands

COMMANDS = load_commands()

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()


def test_every_command_is_documented():
    missing = [name for name in COMMANDS if f"/{name}" not in README]
    assert not missing


def test_every_setting_is_in_env_example():
    names = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE, re.M))
    source = (ROOT / "bot" / "config.py").read_text()
    read = set(re.findall(r'get\("([A-Z0-9_]+)"\)', source))
    assert read == names
    assert len(read) >= len(dataclasses.fields(Settings)) - 1  # each field has its variable


def test_readme_has_the_two_setup_commands():
    assert "pip install -c constraints.txt -e . && digestbot console" in README
    assert "bash .ci/run" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in ci and "pip install --quiet -c constraints.txt -e '.[test]'" in ci


def test_the_layout_maps_every_module():
    """README's Layout names each module of bot/ and summarizer/ under its package's heading."""
    layout = README.split("## Layout", 1)[1].split("```")[1]
    blocks, heading = {}, ""
    for line in layout.splitlines():
        if re.match(r"^\S+/\s", line):
            heading = line.split()[0]
        blocks[heading] = blocks.get(heading, "") + line + "\n"
    missing = []
    for path in sorted((ROOT / "bot").rglob("*.py")) + sorted((ROOT / "summarizer").rglob("*.py")):
        relative = path.relative_to(ROOT)
        package = f"{relative.parent}/"
        if package in blocks:
            if path.name not in blocks[package] and path.name != "__init__.py":
                missing.append(str(relative))
        elif str(relative) not in layout and path.name != "__init__.py":
            missing.append(str(relative))
    assert not missing

