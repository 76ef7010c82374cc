"""Sparse regular-file data: 4 KiB pages in a dict, holes cost nothing.

Allowed imports: ``rumpfs.errors``.

Invariants: ``pages`` maps page index -> bytearray of at most PAGE bytes; a
page shorter than PAGE has implicit zeros after its end; no page lies wholly
at or past ``size``. Memory is O(bytes written), random writes cost
O(write size), and a 1-byte write at 2**40 costs one 1-byte page. SEEK_DATA
and SEEK_HOLE see page granularity, as on Linux's tmpfs.
"""

from __future__ import annotations

from rumpfs.errors import errno, raise_errno

__all__ = ["PAGE", "SparseData"]

PAGE_SHIFT = 12
PAGE = 1 << PAGE_SHIFT
PAGE_MASK = PAGE - 1
_ZEROS = bytes(PAGE)


class SparseData:
    """The bytes of one regular file."""

    __slots__ = ("pages", "size")

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}
        self.size = 0

    @property
    def allocated_pages(self) -> int:
        return len(self.pages)

    def read(self, size: int, offset: int) -> bytes:
        end = min(offset + size, self.size)
        if end <= offset:
            return b""
        pages = self.pages
        first = offset >> PAGE_SHIFT
        po = offset & PAGE_MASK
        n = end - offset
        if po + n <= PAGE:                       # within one page: the common small read
            page = pages.get(first)
            if page is None:
                return bytes(n)
            chunk = bytes(page[po:po + n])
            return chunk if len(chunk) == n else chunk + bytes(n - len(chunk))
        parts: list[bytes | bytearray | memoryview] = []
        index = first
        while n > 0:
            take = PAGE - po if PAGE - po < n else n
            page = pages.get(index)
            if page is None:
                parts.append(_ZEROS[:take] if take < PAGE else _ZEROS)
            else:
                have = len(page) - po
                if have >= take:
                    parts.append(page if po == 0 and take == len(page)
                                 else memoryview(page)[po:po + take])
                else:
                    if have > 0:
                        parts.append(memoryview(page)[po:])
                    parts.append(bytes(take - max(have, 0)))
            n -= take
            po = 0
            index += 1
        return b"".join(parts)

    def write(self, data: bytes | memoryview, offset: int) -> int:
        """Write all of ``data`` at ``offset``; returns the new end offset."""
        n = len(data)
        end = offset + n
        pages = self.pages
        index = offset >> PAGE_SHIFT
        po = offset & PAGE_MASK
        if po + n <= PAGE:                       # within one page
            page = pages.get(index)
            if page is None:
                pages[index] = bytearray(data) if po == 0 else bytearray(po) + data
            else:
                if po > len(page):
                    page.extend(bytes(po - len(page)))
                page[po:po + n] = data
        else:
            mv = data if isinstance(data, memoryview) else memoryview(data)
            pos = 0
            while pos < n:
                take = PAGE - po if PAGE - po < n - pos else n - pos
                page = pages.get(index)
                if page is None:
                    if po == 0:
                        pages[index] = bytearray(mv[pos:pos + take])
                    else:
                        fresh = bytearray(po)
                        fresh += mv[pos:pos + take]
                        pages[index] = fresh
                elif po == 0 and take >= len(page):
                    pages[index] = bytearray(mv[pos:pos + take])
                else:
                    if po > len(page):
                        page.extend(bytes(po - len(page)))
                    page[po:po + take] = mv[pos:pos + take]
                pos += take
                po = 0
                index += 1
        if end > self.size:
            self.size = end
        return end

    def truncate(self, size: int) -> None:
        if size < self.size:
            keep = (size + PAGE_MASK) >> PAGE_SHIFT       # pages [0, keep) may stay
            pages = self.pages
            for index in [i for i in pages if i >= keep]:
                del pages[index]
            tail = size & PAGE_MASK
            if tail:
                page = pages.get(size >> PAGE_SHIFT)
                if page is not None and len(page) > tail:
                    del page[tail:]
        self.size = size

    def clear(self) -> None:
        self.pages.clear()
        self.size = 0

    def seek_data(self, offset: int, want_data: bool) -> int:
        """SEEK_DATA/SEEK_HOLE at page granularity; ENXIO at or past the end."""
        if offset >= self.size or offset < 0:
            raise_errno(errno.ENXIO)
        pages = self.pages
        index = offset >> PAGE_SHIFT
        if want_data:
            if index in pages:
                return offset
            later = [i for i in pages if i > index]
            if not later:
                raise_errno(errno.ENXIO)
            return min(later) << PAGE_SHIFT
        if index not in pages:
            return offset
        while index in pages:
            index += 1
        return min(index << PAGE_SHIFT, self.size)
