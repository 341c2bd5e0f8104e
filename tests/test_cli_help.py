"""Every command's --help shows its options' help text as written: square brackets that rich would
read as markup (``[train]``) must reach the user."""

import re

import typer
from typer.testing import CliRunner

from amtcli.cli import app

runner = CliRunner()
BRACKETED = re.compile(r"\\?\[([A-Za-z_][\w -]*)\]")


def _commands(group, path: tuple[str, ...] = ()):
    yield path, group
    if hasattr(group, "commands"):  # a group (typer vendors its own click classes)
        for name, sub in group.commands.items():
            yield from _commands(sub, (*path, name))


def test_bracketed_words_in_option_help_are_shown():
    checked = 0
    for path, command in _commands(typer.main.get_command(app)):
        wanted = [f"[{m}]" for p in command.params for m in BRACKETED.findall(getattr(p, "help", None) or "")]
        if not wanted:
            continue
        r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"})
        assert r.exit_code == 0, r.output
        text = " ".join(r.output.split())
        for word in wanted:
            assert word in text, f"amt {' '.join(path)} --help lost {word}"
        checked += 1
    assert checked >= 1  # amt train --config names its TOML tables
