"""The side-by-side suite's pure parts (tools/peers): ratio and spread math, targets and
the printed table, corpus and edit determinism, rsync's stats parsing. No peer runs here:
the suite itself is a benchmark (tools/bench_peers.py), never part of the timed tests.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.peers import corpus, rsync
from tools.peers.measure import CommandFailed, run
from tools.peers.report import Row, Target, fmt_value, render, to_json
from tools.peers.stats import Spread, pair_ratios, percentile, spread

REPO = Path(__file__).resolve().parents[2]
TINY = corpus.CorpusSpec(small=40, medium=2, large=2, total=1 << 21, seed=3)


def test_ratios_are_taken_per_pair_not_median_over_median() -> None:
    ours, theirs = [1.0, 4.0, 2.0], [2.0, 4.0, 8.0]
    assert pair_ratios(ours, theirs) == [0.5, 1.0, 0.25]
    assert spread(pair_ratios(ours, theirs)) == Spread(0.5, 0.25, 1.0, 3)
    assert pair_ratios([0.0, 1.0], [0.0, 0.0]) == [1.0, math.inf]
    with pytest.raises(ValueError, match="unpaired"):
        pair_ratios([1.0], [1.0, 2.0])


def test_spread_and_percentile() -> None:
    assert spread([3.0, 1.0, 2.0, 10.0]) == Spread(2.5, 1.0, 10.0, 4)
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.9) == pytest.approx(4.6)
    assert percentile([7.0], 0.9) == 7.0
    for bad in ([], [float("nan")]):
        with pytest.raises(ValueError):
            spread(bad)
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_targets_decide_pass_and_miss() -> None:
    row = Row("initial", "s", (1.0, 2.0, 3.0), "restic", (2.0, 2.0, 2.0), (Target("ratio", 0.8),))
    assert row.stat("ratio") == 1.0 and row.verdict() == "**miss**"
    ok = Row("initial", "s", (1.0, 1.6), "restic", (2.0, 2.0), (Target("ratio", 0.8),))
    assert ok.verdict() == "pass"  # median ratio 0.65; ≤ includes the bound itself
    assert Target("ratio", 0.8).met(0.8) and not Target("median", 1.0, strict=True).met(1.0)
    live = Row(
        "prop",
        "s",
        tuple(0.1 * i for i in range(1, 11)),
        targets=(Target("median", 0.3, strict=True), Target("p90", 0.5, strict=True)),
    )
    assert live.verdict() == "**miss**"  # median 0.55
    assert Row("x", "s", (1.0,)).verdict() == "—"
    with pytest.raises(ValueError, match="needs peer runs"):
        Row("x", "s", (1.0,), targets=(Target("ratio", 1.0),))
    with pytest.raises(ValueError, match="runs vs"):
        Row("x", "s", (1.0,), "p", (1.0, 2.0))


def test_table_prints_medians_spreads_ratios_targets() -> None:
    rows = [
        Row("initial", "s", (8.5, 9.0), "restic", (6.6, 6.0), (Target("ratio", 0.8),)),
        Row("rss", "MiB", (720.0,), "restic", (113.0,)),
        Row(
            "prop",
            "s",
            (0.19, 0.25, 0.31),
            note="quick",
            targets=(Target("median", 0.3, strict=True), Target("p90", 0.5, strict=True)),
        ),
    ]
    table = render(rows).splitlines()
    assert table[0].startswith("| scenario |") and len(table) == 2 + len(rows)
    assert table[2] == (
        "| initial | 8.75 s (8.50 s–9.00 s) | restic 6.30 s (6.00 s–6.60 s) | "
        "1.39× (1.29×–1.50×) | ≤ 0.8× | **miss** |"
    )
    assert table[3] == "| rss | 720 MiB | restic 113 MiB | 6.37× | — | — |"
    assert "p90 298 ms" in table[4] and "median < 300 ms, p90 < 500 ms" in table[4]
    assert table[4].startswith("| prop (quick) |") and table[4].endswith("| pass |")
    assert fmt_value(0.0042, "s") == "4.2 ms" and fmt_value(1234.0, "MB") == "1,234 MB"
    assert '"verdict": "**miss**"' in to_json(rows)


def test_corpus_is_deterministic_and_edits_apply_equally(tmp_path: Path) -> None:
    a, b = corpus.build(tmp_path / "a", TINY), corpus.build(tmp_path / "b", TINY)
    assert corpus.tree_digest(a) == corpus.tree_digest(b)
    files, size = corpus.tree_size(a)
    assert files == 44 and size >= 1 << 21  # medium files may overshoot a tiny total
    other = corpus.build(tmp_path / "c", corpus.CorpusSpec(40, 2, 2, 1 << 21, seed=4))
    assert corpus.tree_digest(other) != corpus.tree_digest(a)
    corpus.copy_tree(a, tmp_path / "copy")
    (tmp_path / "copy" / ".chunksync").mkdir()  # a tool's state dir changes nothing
    (tmp_path / "copy" / ".chunksync" / "index").write_bytes(b"state")
    before = corpus.tree_digest(a)
    assert corpus.tree_digest(tmp_path / "copy") == before
    done = corpus.apply_edits(a, 0)
    corpus.apply_edits(tmp_path / "copy", 0)
    assert done == {"changed": 5, "deleted": done["deleted"], "added": 5, "large": 1}
    assert corpus.tree_digest(a) == corpus.tree_digest(tmp_path / "copy") != before
    corpus.apply_edits(a, 1)
    assert corpus.tree_digest(a) != corpus.tree_digest(tmp_path / "copy")


def test_rsync_stats_and_measured_runs() -> None:
    out = "Number of files: 3\nTotal bytes sent: 1,234,567\nTotal bytes received: 35\n"
    fake = run([sys.executable, "-c", f"print({out!r})"])
    assert rsync.bytes_sent(fake) == 1_234_567
    assert fake.seconds > 0 and fake.max_rss > 1 << 20 and fake.argv[0] == sys.executable
    with pytest.raises(ValueError, match="Total bytes sent"):
        rsync.bytes_sent(run([sys.executable, "-c", "print('nothing')"]))
    with pytest.raises(CommandFailed, match="exited 3: boom"):
        run([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])


def test_bench_peers_presets() -> None:
    spec = importlib.util.spec_from_file_location("bench_peers", REPO / "tools" / "bench_peers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    quick = module.parse_args([])
    # bench_peers imports the package as ``peers``: compare by value, not class identity
    assert quick.mode == "quick" and quick.spec.name == corpus.QUICK.name and quick.reps == 2
    full = module.parse_args(["--full", "--only", "backup,history", "--reps", "5"])
    assert full.spec.name == corpus.FULL.name and full.reps == 5 and full.many_files == 100_000
    assert full.only == ["backup", "history"]
    assert (corpus.FULL.small, corpus.FULL.medium, corpus.FULL.large) == (20_000, 200, 3)
    with pytest.raises(SystemExit):
        module.parse_args(["--only", "nope"])


GENERATED = """<configuration version="36">
    <folder id="default" path="/root/Sync" fsWatcherDelayS="10"><device id="ME"></device></folder>
    <device id="ME" name="vm"><address>dynamic</address></device>
    <gui enabled="true" tls="false"><address>127.0.0.1:8384</address><apikey>x</apikey></gui>
    <options>
        <listenAddress>default</listenAddress>
        <globalAnnounceEnabled>true</globalAnnounceEnabled>
        <localAnnounceEnabled>true</localAnnounceEnabled>
        <relaysEnabled>true</relaysEnabled>
        <natEnabled>true</natEnabled>
        <urAccepted>0</urAccepted>
        <crashReportingEnabled>true</crashReportingEnabled>
    </options>
</configuration>"""


def test_syncthing_config_is_offline_loopback_with_a_1s_watcher(tmp_path: Path) -> None:
    from xml.etree import ElementTree as ET

    from tools.peers.syncthing import OPTIONS, Endpoint, rewrite_config

    me, peer = (
        Endpoint("ME", "home-a", 8001, 9001, "key-a"),
        Endpoint("PEER", "home-b", 8002, 9002, "k"),
    )
    root = ET.fromstring(rewrite_config(GENERATED, me, peer, tmp_path / "a"))
    (folder,) = root.findall("folder")
    assert folder.get("id") == "bench" and folder.get("path") == str(tmp_path / "a")
    assert folder.get("fsWatcherEnabled") == "true" and folder.get("fsWatcherDelayS") == "1"
    assert {d.get("id") for d in folder.findall("device")} == {"ME", "PEER"}
    addresses = {d.get("id"): d.findtext("address") for d in root.findall("device")}
    assert addresses == {"ME": "dynamic", "PEER": "tcp://127.0.0.1:9002"}
    opts = root.find("options")
    assert opts is not None
    assert [n.text for n in opts.findall("listenAddress")] == ["tcp://127.0.0.1:9001"]
    for name in (
        "globalAnnounceEnabled",
        "localAnnounceEnabled",
        "relaysEnabled",
        "natEnabled",
        "crashReportingEnabled",
        "announceLANAddresses",
    ):
        assert opts.findtext(name) == "false", name
    assert opts.findtext("urAccepted") == "-1" and OPTIONS["stunKeepaliveStartS"] == "0"
    assert (
        root.findtext("gui/address") == "127.0.0.1:8001" and root.findtext("gui/apikey") == "key-a"
    )


def test_history_replay_rebuilds_each_commit_exactly(tmp_path: Path) -> None:
    from tools.peers import history

    src = tmp_path / "src"
    src.mkdir()

    def git(*args: str) -> None:
        env = {**os.environ, **history.GIT_ENV}
        subprocess.run(["git", *args], cwd=src, check=True, capture_output=True, env=env)

    git("init", "-q")
    (src / "a.txt").write_text("one\n")
    (src / "d").mkdir()
    (src / "d" / "b.sh").write_text("#!/bin/sh\n")
    (src / "d" / "b.sh").chmod(0o755)
    git("add", "-A")
    git("commit", "-qm", "first")
    (src / "a.txt").write_text("two\n")
    (src / "d" / "b.sh").unlink()
    (src / "c.txt").symlink_to("a.txt")
    git("add", "-A")
    git("commit", "-qm", "second")
    first, second = history.first_parent_commits(src, 5)
    assert history.first_parent_commits(src, 1) == [first]
    out = tmp_path / "out"
    out.mkdir()
    blobs = history._Blobs(src)
    try:
        one = history.tree_listing(src, first)
        history._apply(out, {}, one, blobs)
        assert (out / "d" / "b.sh").stat().st_mode & 0o111 and (
            out / "a.txt"
        ).read_text() == "one\n"
        history._apply(out, one, history.tree_listing(src, second), blobs)
    finally:
        blobs.close()
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "c.txt"]  # empty d/ removed
    assert (out / "a.txt").read_text() == "two\n" and (out / "c.txt").readlink() == Path("a.txt")
