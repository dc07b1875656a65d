"""Chunker: boundaries, shift resistance, keyed gear table, bounded-memory streaming."""

from __future__ import annotations

import io
import itertools
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunksync.chunker import DEFAULT_PARAMS, Chunker, ChunkerParams
from chunksync.crypto.folder_keys import FolderKeys

SMALL = ChunkerParams(min_size=256, avg_size=1024, max_size=4096, buffer_size=8192)


def _rand(n: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(n)


def _cuts(chunker: Chunker, data: bytes) -> list[int]:
    return [len(c) for c in chunker.cut_buffer(data)]


def test_stream_boundaries_equal_whole_buffer_small_params() -> None:
    data = _rand(300_000)
    chunker = Chunker(SMALL, seed=42)
    streamed = [(off, bytes(v)) for off, v in chunker.iter_chunk_spans(io.BytesIO(data))]
    whole = [bytes(v) for v in chunker.cut_buffer(data)]
    assert [c for _, c in streamed] == whole
    assert streamed[0][0] == 0
    assert all(a + len(c) == b for (a, c), (b, _) in itertools.pairwise(streamed))


def test_stream_boundaries_equal_whole_buffer_default_params(folder_keys: FolderKeys) -> None:
    data = _rand(40 << 20)
    chunker = Chunker(ChunkerParams(buffer_size=8 << 20), seed=folder_keys.chunker_seed)
    streamed = [len(v) for v in chunker.iter_chunks(io.BytesIO(data))]
    assert streamed == _cuts(chunker, data)
    mean = sum(streamed) / len(streamed)
    assert 0.7 * (1 << 20) < mean < 1.5 * (1 << 20)
    assert max(streamed) <= DEFAULT_PARAMS.max_size


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=40_000), seed=st.integers(min_value=0, max_value=2**64 - 1))
def test_chunks_concatenate_to_input(data: bytes, seed: int) -> None:
    chunker = Chunker(SMALL, seed=seed)
    chunks = [bytes(v) for v in chunker.iter_chunks(io.BytesIO(data))]
    assert b"".join(chunks) == data
    assert all(0 < len(c) <= SMALL.max_size for c in chunks)


def test_small_file_is_one_chunk_and_empty_has_none() -> None:
    chunker = Chunker(seed=3)
    assert [len(v) for v in chunker.iter_chunks(io.BytesIO(b"x" * 1000))] == [1000]
    small = _rand(DEFAULT_PARAMS.min_size)
    assert [len(v) for v in chunker.iter_chunks(io.BytesIO(small))] == [len(small)]
    assert list(chunker.iter_chunks(io.BytesIO(b""))) == []


def test_one_byte_insert_changes_at_most_two_chunk_ids(folder_keys: FolderKeys) -> None:
    data = _rand(64 << 20, seed=11)
    edited = data[: len(data) // 2] + b"\x00" + data[len(data) // 2 :]
    chunker = Chunker(seed=folder_keys.chunker_seed)
    before = [folder_keys.chunk_id(v) for v in chunker.iter_chunks(io.BytesIO(data))]
    after = [folder_keys.chunk_id(v) for v in chunker.iter_chunks(io.BytesIO(edited))]
    assert len(before) > 30
    assert len(set(after) - set(before)) <= 2
    assert len(set(before) - set(after)) <= 2


def test_different_keys_cut_differently(
    folder_keys: FolderKeys, other_folder_keys: FolderKeys
) -> None:
    data = _rand(16 << 20, seed=5)
    a = _cuts(Chunker(seed=folder_keys.chunker_seed), data)
    b = _cuts(Chunker(seed=other_folder_keys.chunker_seed), data)
    assert sum(a) == sum(b) == len(data)
    assert a != b


def test_chunk_file_reports_offsets(tmp_path: Path) -> None:
    data = _rand(9 << 20, seed=9)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    spans = [(off, bytes(v)) for off, v in Chunker(seed=1).chunk_file(path)]
    assert all(data[off : off + len(c)] == c for off, c in spans)
    assert sum(len(c) for _, c in spans) == len(data)


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        ChunkerParams(min_size=2048, avg_size=1024, max_size=4096)
    with pytest.raises(ValueError):
        ChunkerParams(min_size=256, avg_size=1024, max_size=4096, buffer_size=4096)


_SPARSE_CHILD = textwrap.dedent(
    """
    import resource, sys
    from chunksync.chunker import Chunker
    path = sys.argv[1]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    total = count = 0
    for _off, view in Chunker(seed=12345).chunk_file(path):
        total += len(view)
        count += 1
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(total, count, (after - before) * 1024)
    """
)


@pytest.mark.slow
def test_sparse_5gib_file_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "sparse.img"
    size = 5 << 30
    with path.open("wb") as f:
        f.truncate(size)
    out = subprocess.run(
        [sys.executable, "-c", _SPARSE_CHILD, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    ).stdout.split()
    total, count, growth = (int(x) for x in out)
    assert total == size
    assert count >= size // DEFAULT_PARAMS.max_size
    assert growth < 64 << 20


@pytest.mark.parametrize("hint", [0, 100, 5000, 299_999, 300_000, 10**9])
def test_size_hint_never_changes_boundaries(hint: int) -> None:
    data = _rand(300_000, seed=4)
    chunker = Chunker(SMALL, seed=77)
    spans = [bytes(v) for _, v in chunker.iter_chunk_spans(io.BytesIO(data), size_hint=hint)]
    assert spans == [bytes(v) for v in chunker.cut_buffer(data)]
