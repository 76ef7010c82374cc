"""Sparse regular-file data: 256 KiB chunks that hold only what was written.

Allowed imports: ``rumpfs.errors``.

A file is a dict of chunks (index -> :class:`Chunk`). A chunk keeps one
bytearray for bytes ``[start, start + len(buf))`` of its 256 KiB span;
everything else in the span reads as zeros. ``start`` is page aligned, so a
write in the middle of an empty chunk allocates nothing before its page.
``mask`` has a bit per 4 KiB page that was ever written: those pages are
"allocated" for st_blocks and are data for SEEK_DATA/SEEK_HOLE, exactly as
tmpfs allocates pages (zero bytes filling a gap inside ``buf`` are holes).

Costs: a 1-byte write at 2**40 allocates one 1-byte chunk; a random write
costs O(its size) plus, at worst, zero-filling up to one chunk; sequential
1 MiB I/O is four slice copies.

``falloc`` has a bit per page that fallocate(2) allocated but nothing has
written yet: tmpfs counts such pages in st_blocks but reports them as holes
to SEEK_DATA (its unwritten pages are not "uptodate"), and they read as
zeros. A write turns a falloc page into a data page; KEEP_SIZE may leave
falloc pages past the end of the file until a truncation below them.

Accounting: every SparseData of a mount charges its pages to the mount's
:class:`Space`; with a limit, a write that would need more pages than are
free stops at the first page that does not fit (a short write, ENOSPC if
nothing fits) and fallocate allocates all or nothing, as tmpfs does.

Invariants: no chunk holds data (``mask`` bits) at or past ``size``; only
``falloc`` bits may lie there; bytes of ``buf`` at or past ``size`` do not
exist (truncate cuts them) and bytes of ``buf`` outside ``mask`` pages are
zero; ``mask & falloc == 0``; ``pages`` is the number of set bits over all
masks and falloc masks, and the sum of ``pages`` over a mount's files is its
``Space.used``.
"""

from __future__ import annotations

from typing import Final

from rumpfs.errors import errno, raise_errno

__all__ = ["CHUNK", "PAGE", "Space", "SparseData"]

PAGE_SHIFT: Final = 12
PAGE: Final = 1 << PAGE_SHIFT
PAGE_MASK: Final = PAGE - 1
CHUNK_SHIFT: Final = 18
CHUNK: Final = 1 << CHUNK_SHIFT
CHUNK_MASK: Final = CHUNK - 1
_PAGES_PER_CHUNK: Final = CHUNK >> PAGE_SHIFT
_FULL: Final = (1 << _PAGES_PER_CHUNK) - 1


class Space:
    """A mount's page budget: pages in use, and the most it may use (None: no limit)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.used = 0

    def free(self) -> int:
        return (1 << 62) if self.limit is None else max(self.limit - self.used, 0)


class Chunk:
    """Bytes [start, start+len(buf)) of one 256 KiB span, its written pages and
    its fallocated-but-unwritten pages."""

    __slots__ = ("buf", "falloc", "mask", "start")

    def __init__(self, start: int, buf: bytearray, mask: int, falloc: int = 0) -> None:
        self.start = start
        self.buf = buf
        self.mask = mask
        self.falloc = falloc


def _bits(first: int, last: int) -> int:
    """Bits first..last (inclusive) of a chunk's page mask."""
    return ((1 << (last + 1)) - 1) ^ ((1 << first) - 1)


def _store(buf: bytearray, at: int, piece: bytes | memoryview) -> None:
    """``buf[at:at + len(piece)] = piece`` in place, without the temporary copy
    that bytearray slice assignment makes of a value that is not a bytearray."""
    try:
        memoryview(buf)[at:at + len(piece)] = piece
    except (ValueError, TypeError):                # a view of another format
        buf[at:at + len(piece)] = piece


class SparseData:
    """The bytes of one regular file."""

    __slots__ = ("chunks", "pages", "shared", "size", "space")

    def __init__(self, space: Space | None = None, shared: bool = False) -> None:
        self.chunks: dict[int, Chunk] = {}
        self.size = 0
        self.pages = 0
        self.space = space if space is not None else Space()
        # a mount's empty store, which its files share until their first change
        # (node.own_data): nothing may write, truncate or fallocate into it
        self.shared = shared

    def _charge(self, n: int) -> None:
        self.pages += n
        self.space.used += n

    # -- reading --------------------------------------------------------------

    def read(self, size: int, offset: int) -> bytes:
        end = min(offset + size, self.size)
        if end <= offset:
            return b""
        n = end - offset
        index = offset >> CHUNK_SHIFT
        co = offset & CHUNK_MASK
        if co + n <= CHUNK:                       # one chunk: the common case
            c = self.chunks.get(index)
            if c is None:
                return bytes(n)
            rel = co - c.start
            if rel >= 0 and rel + n <= len(c.buf):
                return bytes(memoryview(c.buf)[rel:rel + n])
            return b"".join(self._piece(c, co, n))
        parts: list[bytes | memoryview] = []
        chunks = self.chunks
        while n > 0:
            take = CHUNK - co if CHUNK - co < n else n
            c = chunks.get(index)
            if c is None:
                parts.append(bytes(take))
            else:
                parts.extend(self._piece(c, co, take))
            n -= take
            co = 0
            index += 1
        return b"".join(parts)

    @staticmethod
    def _piece(c: Chunk, co: int, n: int) -> list[bytes | memoryview]:
        """Bytes [co, co+n) of chunk ``c``, zeros where it holds nothing."""
        out: list[bytes | memoryview] = []
        start, buf = c.start, c.buf
        if co < start:
            lead = min(start - co, n)
            out.append(bytes(lead))
            co += lead
            n -= lead
        if n > 0:
            rel = co - start
            have = len(buf) - rel
            if have > 0:
                take = have if have < n else n
                out.append(memoryview(buf)[rel:rel + take])
                n -= take
            if n > 0:
                out.append(bytes(n))
        return out

    # -- writing --------------------------------------------------------------

    def write(self, data: bytes | memoryview, offset: int) -> int:
        """Write ``data`` at ``offset``; returns the offset after the last byte
        written: all of it unless the mount's space runs out (ENOSPC if none fits)."""
        n = len(data)
        if self.space.limit is not None and n:
            fit = self._fit(offset, n)
            if fit < n:
                if fit <= 0:
                    raise_errno(errno.ENOSPC)
                data = data[:fit]
                n = fit
        end = offset + n
        index = offset >> CHUNK_SHIFT
        co = offset & CHUNK_MASK
        if co + n <= CHUNK:
            self._write_chunk(index, co, data)
        else:
            mv = data if isinstance(data, memoryview) else memoryview(data)
            pos = 0
            while pos < n:
                take = CHUNK - co if CHUNK - co < n - pos else n - pos
                self._write_chunk(index, co, mv[pos:pos + take])
                pos += take
                co = 0
                index += 1
        if end > self.size:
            self.size = end
        return end

    def _write_chunk(self, index: int, co: int, piece: bytes | memoryview) -> None:
        # bits: the pages that bytes [co, co + n) of the chunk touch
        n = len(piece)
        bits = ((1 << (((co + n - 1) >> PAGE_SHIFT) + 1)) - 1) ^ ((1 << (co >> PAGE_SHIFT)) - 1)
        c = self.chunks.get(index)
        if c is None:
            start = co & ~PAGE_MASK
            if start == co:
                buf = bytearray(piece)
            else:
                buf = bytearray(co - start)
                buf += piece
            self.chunks[index] = Chunk(start, buf, bits)
            self._charge(bits.bit_count())
            return
        buf = c.buf
        if co < c.start:                          # grow at the front
            start = co & ~PAGE_MASK
            buf[0:0] = bytes(c.start - start)
            c.start = start
        rel = co - c.start
        have = len(buf)
        # Not ``buf[rel:rel + n] = piece``: a bytearray's slice assignment from
        # anything but a bytearray copies the value into a temporary bytearray
        # first (CPython's bytearray_ass_subscript): a malloc and a second copy
        # per write. A memoryview's slice assignment and ``+=`` read the
        # value's buffer directly. (A memoryview of ``buf`` must be gone before
        # ``+=`` resizes it: each is a temporary of its own statement.)
        if rel + n <= have:                       # within what the chunk holds
            _store(buf, rel, piece)
        elif rel >= have:
            if rel > have:                        # zero-fill a gap (holes, not pages)
                buf += bytes(rel - have)
            buf += piece
        else:                                     # overlaps the end: part in, part on
            mv = piece if isinstance(piece, memoryview) else memoryview(piece)
            _store(buf, rel, mv[:have - rel])
            buf += mv[have - rel:]
        old = c.mask
        if old | bits != old:
            c.mask = old | bits
            new = bits & ~old
            fal = c.falloc
            if fal & new:                         # fallocated pages become data
                c.falloc = fal & ~new
                new &= ~fal
            if new:
                self._charge(new.bit_count())

    def _new_pages(self, offset: int, n: int) -> list[tuple[int, int]]:
        """(page, chunk bits) per chunk for pages that bytes [offset, offset+n)
        touch and that are not allocated yet, in file order."""
        out: list[tuple[int, int]] = []
        first = offset >> PAGE_SHIFT
        last = (offset + n - 1) >> PAGE_SHIFT
        per = _PAGES_PER_CHUNK
        page = first
        while page <= last:
            index = page // per
            hi = min(last, index * per + per - 1)
            bits = _bits(page - index * per, hi - index * per)
            c = self.chunks.get(index)
            if c is not None:
                bits &= ~(c.mask | c.falloc)
            if bits:
                out.append((index * per, bits))
            page = hi + 1
        return out

    def _fit(self, offset: int, n: int) -> int:
        """How many of ``n`` bytes at ``offset`` fit in the free space: pages are
        allocated in order, and the write stops before the first that does not fit."""
        free = self.space.free()
        first = offset >> PAGE_SHIFT
        if ((offset + n - 1) >> PAGE_SHIFT) - first + 1 <= free:
            return n
        for base, bits in self._new_pages(offset, n):
            k = bits.bit_count()
            if k > free:
                while free:                       # skip the pages that still fit
                    bits &= bits - 1
                    free -= 1
                page = base + (bits & -bits).bit_length() - 1
                return min(n, (page << PAGE_SHIFT) - offset)
            free -= k
        return n

    # -- size -----------------------------------------------------------------

    def truncate(self, size: int) -> None:
        """Set the size; shrinking frees every page past the new end (fallocated
        ones included), growing allocates nothing."""
        if size < self.size:
            chunks = self.chunks
            last = (size - 1) >> CHUNK_SHIFT if size else -1
            freed = 0
            for index in [i for i in chunks if i > last]:
                gone = chunks.pop(index)
                freed += (gone.mask | gone.falloc).bit_count()
            c = chunks.get(last)
            if c is not None:
                co = size & CHUNK_MASK or CHUNK        # bytes of this chunk to keep
                keep = (1 << ((co + PAGE_MASK) >> PAGE_SHIFT)) - 1
                mask, fal = c.mask & keep, c.falloc & keep
                freed += (c.mask | c.falloc).bit_count() - (mask | fal).bit_count()
                c.mask, c.falloc = mask, fal
                if not mask | fal:
                    del chunks[last]
                elif co - c.start < len(c.buf):
                    del c.buf[max(co - c.start, 0):]
            self._charge(-freed)
        self.size = size

    def clear(self) -> None:
        self._charge(-self.pages)
        self.chunks.clear()
        self.size = 0

    # -- fallocate --------------------------------------------------------------

    def allocate(self, offset: int, length: int, keep_size: bool) -> None:
        """fallocate(2) mode 0 / KEEP_SIZE: allocate the pages of the range (all
        or nothing: ENOSPC leaves the file as it was); without ``keep_size`` the
        file grows to cover it."""
        new = self._new_pages(offset, length)
        count = sum(bits.bit_count() for _, bits in new)
        if count > self.space.free():
            raise_errno(errno.ENOSPC)
        per = _PAGES_PER_CHUNK
        for base, bits in new:
            index = base // per
            c = self.chunks.get(index)
            if c is None:
                start = ((bits & -bits).bit_length() - 1) << PAGE_SHIFT
                self.chunks[index] = Chunk(start, bytearray(), 0, bits)
            else:
                c.falloc |= bits
        self._charge(count)
        if not keep_size and offset + length > self.size:
            self.size = offset + length

    def punch(self, offset: int, length: int) -> None:
        """PUNCH_HOLE|KEEP_SIZE: zero the range; pages wholly inside it are freed,
        partial pages at its ends stay allocated (as tmpfs's truncate_range)."""
        end = offset + length
        first_full = (offset + PAGE_MASK) >> PAGE_SHIFT
        last_full = (end >> PAGE_SHIFT) - 1
        freed = 0
        for index in [i for i in self.chunks
                      if i << CHUNK_SHIFT < end and (i + 1) << CHUNK_SHIFT > offset]:
            c = self.chunks[index]
            base = index << CHUNK_SHIFT
            lo = max(offset - base, 0)                 # chunk-relative byte range
            hi = min(end - base, CHUNK)
            buf = c.buf
            a, b = max(lo - c.start, 0), min(hi - c.start, len(buf))
            if a < b:
                buf[a:b] = bytes(b - a)
            p0 = max(first_full - index * _PAGES_PER_CHUNK, 0)
            p1 = min(last_full - index * _PAGES_PER_CHUNK, _PAGES_PER_CHUNK - 1)
            if p0 <= p1:
                bits = _bits(p0, p1)
                gone = (c.mask | c.falloc) & bits
                if gone:
                    freed += gone.bit_count()
                    c.mask &= ~bits
                    c.falloc &= ~bits
            if not c.mask | c.falloc:
                del self.chunks[index]
            elif not c.mask:
                c.buf = bytearray()                     # only unwritten pages left
            else:
                keep = (c.mask.bit_length() << PAGE_SHIFT) - c.start
                if keep < len(buf):
                    del buf[keep:]
        self._charge(-freed)

    # -- holes ----------------------------------------------------------------

    def seek_data(self, offset: int, want_data: bool) -> int:
        """SEEK_DATA/SEEK_HOLE at page granularity; ENXIO at or past the end."""
        if offset >= self.size or offset < 0:
            raise_errno(errno.ENXIO)
        page = offset >> PAGE_SHIFT
        if want_data:
            found = self._next_page(page, True)
            if found is None:
                raise_errno(errno.ENXIO)
            return max(offset, found << PAGE_SHIFT)
        found = self._next_page(page, False)
        hole = self.size if found is None else max(offset, found << PAGE_SHIFT)
        return min(hole, self.size)

    def _next_page(self, page: int, data: bool) -> int | None:
        """The first page >= ``page`` that is data (or a hole); None if none is data."""
        chunks = self.chunks
        index = page >> (CHUNK_SHIFT - PAGE_SHIFT)
        bit = page & (_PAGES_PER_CHUNK - 1)
        base = index * _PAGES_PER_CHUNK
        if data:
            c = chunks.get(index)
            if c is not None:
                rest = c.mask >> bit
                if rest:
                    return page + ((rest & -rest).bit_length() - 1)
            later = [i for i, c in chunks.items() if i > index and c.mask]
            if not later:
                return None
            nxt = min(later)
            mask = chunks[nxt].mask
            return nxt * _PAGES_PER_CHUNK + (mask & -mask).bit_length() - 1
        while True:
            c = chunks.get(index)
            if c is None:
                return max(page, base)
            holes = (~c.mask & _FULL) >> bit
            if holes:
                return base + bit + (holes & -holes).bit_length() - 1
            index += 1
            base += _PAGES_PER_CHUNK
            bit = 0
