"""SparseData's fallocate, hole punching and space limits against a page model."""

from __future__ import annotations

import random

import pytest

from rumpfs.errors import errno
from rumpfs.fs.rumpfs.data import CHUNK, PAGE, Space, SparseData


class Model:
    def __init__(self) -> None:
        self.content = bytearray()
        self.written: set[int] = set()
        self.falloc: set[int] = set()

    def write(self, off: int, data: bytes) -> None:
        end = off + len(data)
        if len(self.content) < end:
            self.content.extend(bytes(end - len(self.content)))
        self.content[off:end] = data
        pages = set(range(off // PAGE, (end - 1) // PAGE + 1))
        self.written |= pages
        self.falloc -= pages

    def allocate(self, off: int, n: int, keep: bool) -> None:
        pages = set(range(off // PAGE, (off + n - 1) // PAGE + 1))
        self.falloc |= pages - self.written
        if not keep and off + n > len(self.content):
            self.content.extend(bytes(off + n - len(self.content)))

    def punch(self, off: int, n: int) -> None:
        end = min(off + n, len(self.content))
        if off < end:
            self.content[off:end] = bytes(end - off)
        full = set(range(-(-off // PAGE), (off + n) // PAGE))
        self.written -= full
        self.falloc -= full

    def truncate(self, size: int) -> None:
        if size < len(self.content):
            del self.content[size:]
            keep = -(-size // PAGE)
            self.written = {p for p in self.written if p < keep}
            self.falloc = {p for p in self.falloc if p < keep}
        else:
            self.content.extend(bytes(size - len(self.content)))


@pytest.mark.parametrize("seed", range(12))
def test_against_model(seed: int) -> None:
    r = random.Random(seed)
    space = Space()
    d = SparseData(space)
    m = Model()
    for _ in range(80):
        op = r.random()
        off = r.choice([r.randrange(0, 1 << 20), r.randrange(0, 300) * PAGE,
                        r.randrange(0, 2 * CHUNK)])
        n = r.choice([1, 100, PAGE, 5000, CHUNK + 3, r.randrange(1, 400_000)])
        if op < 0.35:
            data = bytes([r.randrange(1, 256)]) * n
            d.write(data, off)
            m.write(off, data)
        elif op < 0.55:
            keep = r.random() < 0.5
            d.allocate(off, n, keep)
            m.allocate(off, n, keep)
        elif op < 0.75:
            d.punch(off, n)
            m.punch(off, n)
        else:
            size = r.randrange(0, len(m.content) + 200_000)
            d.truncate(size)
            m.truncate(size)
        assert d.size == len(m.content)
        assert d.pages == len(m.written) + len(m.falloc) == space.used
        assert d.read(len(m.content) + 10, 0) == bytes(m.content)
        data_pages = sorted(p for p in m.written if p * PAGE < d.size)
        if d.size:
            pos = r.randrange(0, d.size)
            later = [p for p in data_pages if (p + 1) * PAGE > pos]
            if later:
                assert d.seek_data(pos, True) == max(pos, later[0] * PAGE)
            else:
                with pytest.raises(OSError) as info:
                    d.seek_data(pos, True)
                assert info.value.errno == errno.ENXIO
            hole = pos
            while hole // PAGE in m.written and hole < d.size:
                hole = (hole // PAGE + 1) * PAGE
            assert d.seek_data(pos, False) == min(hole, d.size)
    d.clear()
    assert space.used == 0


def test_limit_short_write_and_all_or_nothing_allocate() -> None:
    space = Space(limit=4)
    d = SparseData(space)
    assert d.write(b"a" * (5 * PAGE), 100) == 100 + 4 * PAGE - 100     # stops before page 4
    assert space.used == 4
    with pytest.raises(OSError) as info:
        d.write(b"b", 10 * PAGE)
    assert info.value.errno == errno.ENOSPC
    assert d.write(b"c" * PAGE, 0) == PAGE                              # held pages: free
    d.truncate(2 * PAGE)
    assert space.used == 2
    with pytest.raises(OSError):
        d.allocate(0, 5 * PAGE, False)
    assert (d.size, space.used) == (2 * PAGE, 2)
    d.allocate(0, 4 * PAGE, True)
    assert (d.size, space.used) == (2 * PAGE, 4)
