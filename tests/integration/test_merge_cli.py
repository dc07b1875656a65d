"""Automatic merges through the command line: the review on every device, undo, and
the policy command (a rule set on one device is synced to the others)."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.daemons import DaemonProcess, wait_until

pytestmark = pytest.mark.integration

BASE = "".join(f"line {i}\n" for i in range(40))


def _merged(w: CliWorld):
    a = w.init("laptop")
    (a / "notes.md").write_text(BASE)
    w.sync("laptop")
    b = w.join("desktop")
    (a / "notes.md").write_text(BASE.replace("line 2\n", "laptop's line\n"))
    (b / "notes.md").write_text(BASE.replace("line 38\n", "desktop's line\n"))
    w.sync("laptop")
    w.sync("desktop")  # desktop merges
    w.sync("laptop")
    return a, b


def test_merge_is_reviewed_on_every_device_and_undone(cli_world: CliWorld) -> None:
    w = cli_world
    a, b = _merged(w)
    both = BASE.replace("line 2\n", "laptop's line\n").replace("line 38\n", "desktop's line\n")
    assert (a / "notes.md").read_text() == both == (b / "notes.md").read_text()
    for device, folder in (("laptop", a), ("desktop", b)):
        rows = json.loads(w.run(device, "conflicts", str(folder), "--json").output)
        assert [(r["path"], r["kind"]) for r in rows] == [("notes.md", "automatic-merge")]
        assert rows[0]["mine"] == "desktop" and rows[0]["theirs"] == "laptop"
        assert rows[0]["undo"]["theirs"].endswith("notes.md --undo-merge theirs")
    text = w.run("laptop", "conflicts", str(a)).output
    assert "merged them line by line" in text and "--undo-merge mine" in text
    w.run("laptop", "resolve", str(a), "notes.md", "--undo-merge", "theirs")
    assert (a / "notes.md").read_text() == BASE.replace("line 2\n", "laptop's line\n")
    w.sync("desktop")
    assert (b / "notes.md").read_text() == BASE.replace("line 2\n", "laptop's line\n")


def test_resolve_needs_exactly_one_of_keep_and_undo(cli_world: CliWorld) -> None:
    a = cli_world.init("laptop")
    result = cli_world.run("laptop", "resolve", str(a), "x.md", ok=False)
    assert result.exit_code != 0 and "--undo-merge" in result.output


def test_policy_set_list_and_sync(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    w.run("laptop", "policy", str(a), "*.md", "keep-both")
    rows = json.loads(w.run("laptop", "policy", str(a), "--json").output)
    assert rows[-1] == {"pattern": "*.md", "policy": "keep-both", "source": ".chunksyncpolicy"}
    assert {"pattern": "*.txt", "policy": "merge", "source": "default"} in rows
    w.sync("laptop")
    b = w.join("desktop")
    assert (b / ".chunksyncpolicy").read_text() == "*.md keep-both\n"
    (a / "notes.md").write_text(BASE)
    w.sync("laptop")
    w.sync("desktop")
    (a / "notes.md").write_text(BASE.replace("line 2\n", "x\n"))
    (b / "notes.md").write_text(BASE.replace("line 38\n", "y\n"))
    w.sync("laptop")
    w.sync("desktop")
    assert len(list(b.glob("notes*.md"))) == 2  # keep-both: a conflicted copy
    w.run("laptop", "policy", str(a), "--remove", "*.md")
    assert (a / ".chunksyncpolicy").read_text() == ""
    help_text = w.run("laptop", "policy", "--help").output
    assert "merge" in help_text and "last-write-wins" in help_text


def test_the_daemon_logs_each_merge_as_one_structured_line(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "notes.md").write_text(BASE)
    w.sync("laptop")
    b = w.join("desktop")
    (a / "notes.md").write_text(BASE.replace("line 2\n", "laptop's line\n"))
    w.sync("laptop")
    (b / "notes.md").write_text(BASE.replace("line 38\n", "desktop's line\n"))
    with DaemonProcess(w, "desktop") as db:
        db.wait_ready()
        wait_until(lambda: db.events("merged"), 30, what="the merge logged")
        db.wait_at_head(30)
        [line] = db.events("merged")
        assert line["path"] == "notes.md" and line["how"] == "text" and line["head"]
    assert "laptop's line" in (b / "notes.md").read_text()
    assert "desktop's line" in (b / "notes.md").read_text()
