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

Invariants: no chunk lies wholly at or past ``size``; bytes of ``buf`` at or
past ``size`` do not exist (truncate cuts them); ``pages`` is the number of
set bits over all masks.
"""

from __future__ import annotations

from rumpfs.errors import errno, raise_errno

__all__ = ["CHUNK", "PAGE", "SparseData"]

PAGE_SHIFT = 12
PAGE = 1 << PAGE_SHIFT
PAGE_MASK = PAGE - 1
CHUNK_SHIFT = 18
CHUNK = 1 << CHUNK_SHIFT
CHUNK_MASK = CHUNK - 1
_PAGES_PER_CHUNK = CHUNK >> PAGE_SHIFT
_FULL = (1 << _PAGES_PER_CHUNK) - 1


class Chunk:
    """Bytes [start, start+len(buf)) of one 256 KiB span, and its written pages."""

    __slots__ = ("buf", "mask", "start")

    def __init__(self, start: int, buf: bytearray, mask: int) -> None:
        self.start = start
        self.buf = buf
        self.mask = mask


class SparseData:
    """The bytes of one regular file."""

    __slots__ = ("chunks", "pages", "size")

    def __init__(self) -> None:
        self.chunks: dict[int, Chunk] = {}
        self.size = 0
        self.pages = 0

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
        """Write all of ``data`` at ``offset``; returns the new end offset."""
        n = len(data)
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
            self.pages += bits.bit_count()
            return
        buf = c.buf
        if co < c.start:                          # grow at the front
            start = co & ~PAGE_MASK
            buf[0:0] = bytes(c.start - start)
            c.start = start
        rel = co - c.start
        if rel > len(buf):                        # zero-fill a gap (holes, not pages)
            buf.extend(bytes(rel - len(buf)))
        buf[rel:rel + n] = piece
        old = c.mask
        if old | bits != old:
            c.mask = old | bits
            self.pages += (old | bits).bit_count() - old.bit_count()

    # -- size -----------------------------------------------------------------

    def truncate(self, size: int) -> None:
        if size < self.size:
            chunks = self.chunks
            last = (size - 1) >> CHUNK_SHIFT if size else -1
            for index in [i for i in chunks if i > last]:
                self.pages -= chunks.pop(index).mask.bit_count()
            c = chunks.get(last)
            if c is not None:
                co = size & CHUNK_MASK or CHUNK        # bytes of this chunk to keep
                keep_pages = (co + PAGE_MASK) >> PAGE_SHIFT
                mask = c.mask & ((1 << keep_pages) - 1)
                self.pages -= c.mask.bit_count() - mask.bit_count()
                c.mask = mask
                if co <= c.start or not mask:
                    del chunks[last]
                elif co - c.start < len(c.buf):
                    del c.buf[co - c.start:]
        self.size = size

    def clear(self) -> None:
        self.chunks.clear()
        self.size = 0
        self.pages = 0

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
            later = [i for i in chunks if i > index]
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
