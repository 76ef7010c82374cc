"""SparseData against a bytearray model: reads, writes, truncation, pages, holes."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from rumpfs.errors import errno
from rumpfs.fs.rumpfs.data import CHUNK, PAGE, SparseData


def _model_check(seed: int) -> None:
    r = random.Random(seed)
    d = SparseData()
    model = bytearray()
    written: set[int] = set()
    for _ in range(60):
        op = r.random()
        if op < 0.6:
            off = r.choice([r.randrange(0, 1 << 20), r.randrange(0, 1 << 19) // PAGE * PAGE,
                            r.randrange(0, 300_000)])
            n = r.choice([1, 10, PAGE, 5000, 70_000, CHUNK + 7, r.randrange(1, 600_000)])
            data = (bytes(r.randrange(256) for _ in range(50)) * (n // 50 + 1))[:n]
            assert d.write(data, off) == max(off + n, 0)
            if len(model) < off + n:
                model.extend(bytes(off + n - len(model)))
            model[off:off + n] = data
            written.update(range(off // PAGE, (off + n - 1) // PAGE + 1))
        elif op < 0.8:
            size = r.randrange(0, len(model) + 100_000)
            d.truncate(size)
            if size < len(model):
                del model[size:]
            else:
                model.extend(bytes(size - len(model)))
            written = {p for p in written if p * PAGE < size}
        else:
            off = r.randrange(0, len(model) + 10)
            n = r.randrange(0, 700_000)
            assert d.read(n, off) == bytes(model[off:off + n])
        assert d.size == len(model)
        assert d.pages == len(written)
    assert d.read(len(model) + 5, 0) == bytes(model)
    for _ in range(20):
        if not model:
            break
        off = r.randrange(0, len(model))
        later = sorted(p for p in written if p >= off // PAGE)
        want = max(off, later[0] * PAGE) if later else None
        try:
            got: int | None = d.seek_data(off, True)
        except OSError as e:
            assert e.errno == errno.ENXIO
            got = None
        assert got == want
        page = off // PAGE
        while page in written:
            page += 1
        assert d.seek_data(off, False) == min(max(off, page * PAGE), len(model))


@pytest.mark.parametrize("seed", range(40))
def test_matches_bytearray_model(seed: int) -> None:
    _model_check(seed)


def test_one_byte_at_one_tebibyte_costs_almost_nothing() -> None:
    d = SparseData()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    d.write(b"x", 1 << 40)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 4096
    assert d.size == (1 << 40) + 1
    assert d.pages == 1
    assert d.read(4, (1 << 40) - 3) == b"\0\0\0x"
    assert d.seek_data(0, True) == 1 << 40
    assert d.seek_data(0, False) == 0
    assert d.seek_data(1 << 40, False) == (1 << 40) + 1


def test_write_in_mid_chunk_allocates_from_its_page_only() -> None:
    d = SparseData()
    d.write(b"abc", CHUNK - 10)
    chunk = d.chunks[0]
    assert chunk.start == (CHUNK - 10) // PAGE * PAGE
    assert len(chunk.buf) < 2 * PAGE


def test_gap_inside_a_chunk_is_a_hole_not_data() -> None:
    d = SparseData()
    d.write(b"a", 0)
    d.write(b"b", 10 * PAGE)
    assert d.pages == 2
    assert d.seek_data(1, False) == PAGE
    assert d.seek_data(PAGE, True) == 10 * PAGE
    assert d.read(1, 5 * PAGE) == b"\0"


def test_seek_past_end_is_enxio() -> None:
    d = SparseData()
    d.write(b"a", 0)
    for want in (True, False):
        with pytest.raises(OSError) as info:
            d.seek_data(1, want)
        assert info.value.errno == errno.ENXIO


def test_truncate_down_then_up_reads_zeros() -> None:
    d = SparseData()
    d.write(b"x" * 10_000, 0)
    d.truncate(100)
    d.truncate(10_000)
    assert d.read(10_000, 0) == b"x" * 100 + bytes(9_900)
    assert d.pages == 1


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "view", "view-of-ints"])
def test_writes_into_held_bytes_across_and_past_their_end(kind: str) -> None:
    # In place (within what a chunk holds), overlapping its end, appending,
    # and past a gap: every buffer type a write may bring, including a view
    # of another format (stored byte for byte, as the slow path does).
    import array

    def as_kind(b: bytes) -> bytes | memoryview:
        if kind == "bytes":
            return b
        if kind == "bytearray":
            return memoryview(bytearray(b))
        if kind == "view":
            return memoryview(b)
        return memoryview(array.array("b", b))     # format "b": the fallback

    d = SparseData()
    model = bytearray()
    rng = random.Random(7)
    for off, n in [(0, 5000), (100, 200), (4000, 3000), (7000, 10), (9000, 50),
                   (CHUNK - 10, 20), (CHUNK + 5, 1), (50, 8950)]:
        data = rng.randbytes(n)
        d.write(as_kind(data), off)
        if len(model) < off + n:
            model.extend(bytes(off + n - len(model)))
        model[off:off + n] = data
    assert d.read(len(model) + 10, 0) == bytes(model)
