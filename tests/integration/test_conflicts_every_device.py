"""Conflicted copies are listed, and can be resolved, on every device, not only the
one that made them."""

from __future__ import annotations

import json

from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.devices import tree_of


def _conflict_between(w: CliWorld):
    a = w.init("laptop")
    (a / "notes.txt").write_text("base")
    w.sync("laptop")
    b = w.join("desktop")
    (a / "notes.txt").write_text("laptop's edit")
    (b / "notes.txt").write_text("desktop's edit")
    w.sync("laptop")
    w.sync("desktop")  # desktop makes the copy and pushes it
    w.sync("laptop")
    return a, b


def test_conflicts_are_listed_on_the_device_that_kept_the_name(cli_world: CliWorld) -> None:
    a, b = _conflict_between(cli_world)
    rows = json.loads(cli_world.run("laptop", "conflicts", str(a), "--json").output)
    assert len(rows) == 1 and rows[0]["path"] == "notes.txt"
    assert (
        rows[0]["device"] == "desktop"
        and (a / rows[0]["copy_path"]).read_text() == "desktop's edit"
    )
    assert "no conflicts" not in cli_world.run("laptop", "conflicts", str(a)).output


def test_a_conflict_made_elsewhere_is_resolved_here_and_everywhere(cli_world: CliWorld) -> None:
    w = cli_world
    a, b = _conflict_between(w)
    w.run("laptop", "resolve", str(a), "notes.txt", "--keep", "theirs")
    assert (a / "notes.txt").read_text() == "laptop's edit"
    w.sync("desktop")
    for device, folder in (("laptop", a), ("desktop", b)):
        assert "no conflicts" in w.run(device, "conflicts", str(folder)).output
    assert tree_of(a, mtimes=False) == tree_of(b, mtimes=False)


def test_keeping_both_stops_listing_a_copy_made_elsewhere(cli_world: CliWorld) -> None:
    w = cli_world
    a, _ = _conflict_between(w)
    w.run("laptop", "resolve", str(a), "notes.txt", "--keep", "both")
    assert "no conflicts" in w.run("laptop", "conflicts", str(a)).output
    assert len(list(a.glob("notes*.txt"))) == 2
