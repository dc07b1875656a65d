"""Default ignores end to end: leftovers of OS, office suites, editors and browsers stay
on the device that made them; a ``!`` line in ``.chunksyncignore`` brings one back."""

from __future__ import annotations

from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.devices import tree_of

LEFTOVERS = (
    ".DS_Store",
    "docs/Thumbs.db",
    "desktop.ini",
    "docs/.~lock.plan.odt#",
    "docs/~$plan.docx",
    "docs/.plan.md.swp",
    "film.mkv.crdownload",
    ".Trash-1000/old.txt",
    ".nfs00001",
)


def test_os_and_editor_leftovers_are_not_synced_unless_re_included(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.folder("laptop")
    (a / "docs").mkdir(parents=True)
    (a / ".Trash-1000").mkdir()
    for name in LEFTOVERS:
        (a / name).write_text(f"junk {name}")
    (a / "docs" / "plan.md").write_text("the plan")
    (a / "docs" / "plan.md~").write_text("a backup the user keeps")
    (a / "iso.part").write_text("kept on purpose")
    (a / ".chunksyncignore").write_text("!iso.part\n")
    w.init("laptop")
    b = w.join("desktop")
    # the join scanned before the shared .chunksyncignore arrived: iso.part comes next,
    # and the rules changing must not turn it into a deletion on the laptop
    w.sync("desktop")
    w.sync("laptop")
    assert (a / "iso.part").read_text() == "kept on purpose"
    assert set(tree_of(b, mtimes=False)) == {
        ".chunksyncignore",
        "docs",
        "docs/plan.md",
        "docs/plan.md~",
        "iso.part",
    }
    # and back: the desktop's own leftovers stay there, its edits travel
    (b / "docs" / ".DS_Store").write_text("desktop junk")
    (b / "docs" / "plan.md").write_text("the plan, v2")
    w.sync("desktop")
    w.sync("laptop")
    assert (a / "docs" / "plan.md").read_text() == "the plan, v2"
    assert (a / "docs" / ".DS_Store").exists() is False
    for name in LEFTOVERS:  # never deleted by the sync either
        assert (a / name).read_text() == f"junk {name}"
