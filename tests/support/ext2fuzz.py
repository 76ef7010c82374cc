"""Corruption fuzzing of ext2/3/4 images: where the metadata is, how to damage
it, and what a kernel must survive (used by ``tests/ext2/test_fuzz.py``).

- :func:`metadata_blocks` lists an image's metadata blocks by kind, as
  dumpe2fs and debugfs see them: superblocks and group descriptors, bitmaps,
  the inode-table blocks that hold used inodes, directory blocks, extent-tree
  and indirect blocks, slow-symlink blocks.
- :func:`mutate` applies random byte and bit changes to such blocks.
- :func:`exercise` is what runs in the child process against the mounted
  (corrupt) file system: a full walk with reads, then a few writes; every call
  may fail with OSError and nothing else.
- :func:`run_case` runs one case in a forked child with a time limit and an
  address-space limit, and returns what went wrong (None when nothing did).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import resource
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.ext2img import run

KINDS = ("super", "gdt", "bitmap", "itable", "dir", "tree", "symlink")


@dataclass
class Metadata:
    block_size: int
    blocks: dict[str, list[int]] = field(default_factory=dict)

    def add(self, kind: str, *blocks: int) -> None:
        self.blocks.setdefault(kind, []).extend(b for b in blocks if b >= 0)


def _ranges(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.append((int(lo), int(hi or lo)))
    return out


def metadata_blocks(image: str | os.PathLike[str]) -> Metadata:
    """The metadata blocks of ``image`` by kind (see :data:`KINDS`)."""
    dump = run(["dumpe2fs", str(image)]).stdout
    head = dict(ln.split(":", 1) for ln in dump.splitlines() if ":" in ln and
                not ln.startswith(" "))
    bs = int(head["Block size"])
    ipg = int(head["Inodes per group"])
    isz = int(head.get("Inode size", "128"))
    md = Metadata(bs)
    used_inodes: list[int] = []
    group = -1
    for line in dump.splitlines():
        m = re.match(r"Group (\d+):", line)
        if m:
            group = int(m.group(1))
            continue
        line = line.strip()
        for label, kind in (("superblock at", "super"), ("Group descriptors at", "gdt"),
                            ("Block bitmap at", "bitmap"), ("Inode bitmap at", "bitmap")):
            for m in re.finditer(label + r" (\d+)(?:-(\d+))?", line):
                lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
                md.add(kind, *range(lo, hi + 1))
        m = re.match(r"Inode table at (\d+)-(\d+)", line)
        if m:
            table = int(m.group(1))
        m = re.match(r"Free inodes: ?(.*)", line)
        if m and group >= 0:
            free: set[int] = set()
            for lo, hi in _ranges(m.group(1)):
                free.update(range(lo, hi + 1))
            first = group * ipg + 1
            used = [i for i in range(first, first + ipg) if i not in free]
            used_inodes += used
            md.add("itable", *sorted({table + (i - first) * isz // bs for i in used}))
    # Per used inode: the blocks that are structure rather than file data.
    stats = run(["debugfs", "-f", "-", str(image)],
                input="\n".join(f"stat <{i}>" for i in used_inodes) + "\n").stdout
    for chunk in stats.split("Inode: ")[1:]:
        kind_m = re.search(r"Type: (\w+)", chunk)
        kind = kind_m.group(1) if kind_m else ""
        listing = re.search(r"(?:BLOCKS|EXTENTS):\n(.*)", chunk)
        if not listing:
            continue
        for m in re.finditer(r"\(([^)]*)\):(\d+)(?:-(\d+))?", listing.group(1)):
            tag, lo, hi = m.group(1), int(m.group(2)), int(m.group(3) or m.group(2))
            if tag in ("IND", "DIND", "TIND") or tag.startswith("ETB"):
                md.add("tree", *range(lo, hi + 1))
            elif kind == "directory":
                md.add("dir", *range(lo, min(hi, lo + 63) + 1))
            elif kind == "symlink":
                md.add("symlink", *range(lo, hi + 1))
    for kind in md.blocks:
        md.blocks[kind] = sorted(set(md.blocks[kind]))
    return md


def mutate(image: bytearray, md: Metadata, rng: random.Random, changes: int) -> list[str]:
    """Change ``changes`` random bytes or bits in metadata blocks of ``image``
    (a file system at offset 0); returns a description of each change."""
    done = []
    kinds = [k for k in KINDS if md.blocks.get(k)]
    for _ in range(changes):
        kind = rng.choice(kinds)
        block = rng.choice(md.blocks[kind])
        if kind == "super":
            # the fields that matter sit in the first 0x180 bytes of the superblock
            # (the primary one sits at byte 1024: inside block 0 unless blocks are 1 KiB)
            base = block * md.block_size + (1024 if block == 0 else 0)
            off = base + rng.randrange(0x180)
        else:
            off = block * md.block_size + rng.randrange(md.block_size)
        if off >= len(image):
            continue
        if rng.random() < 0.5:
            bit = rng.randrange(8)
            image[off] ^= 1 << bit
            done.append(f"{kind} block {block}: flip bit {bit} of byte {off}")
        else:
            value = rng.choice((0, 0xFF, 0x7F, 0x80, 1, rng.randrange(256)))
            image[off] = value
            done.append(f"{kind} block {block}: byte {off} = {value:#x}")
    return done


def exercise(k: Any, root: str, *, max_files: int = 400, max_read: int = 1 << 20) -> list[str]:
    """Walk, read and write under ``root`` of kernel ``k``; every call may fail
    with OSError (counted), anything else propagates. Returns the errors seen."""
    seen: list[str] = []

    def attempt(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except OSError as e:
            seen.append(f"{fn.__name__}{args[:1]}: {e.errno}")
            return None

    todo = [root]
    visited = 0
    while todo and visited < max_files:
        path = todo.pop()
        visited += 1
        st = attempt(k.lstat, path)
        if st is None:
            continue
        fmt = st.st_mode & 0o170000
        if fmt == 0o040000:
            names = attempt(k.listdir, path) or []
            todo.extend(f"{path.rstrip('/')}/{n}" for n in names[:200])
            attempt(k.stat, path + "/.")
        elif fmt == 0o120000:
            attempt(k.readlink, path)
            attempt(k.stat, path)
        elif fmt == 0o100000:
            fd = attempt(k.open, path, os.O_RDONLY)
            if fd is not None:
                off = 0
                while off < min(st.st_size, max_read):
                    data = attempt(k.pread, fd, 65536, off)
                    if not data:
                        break
                    off += len(data)
                if st.st_size > max_read:  # and the tail, past any hole
                    attempt(k.pread, fd, 65536, max(0, st.st_size - 65536))
                attempt(k.close, fd)
    # A few writes: new file, append to an old one, mkdir, rename, unlink, truncate.
    new = f"{root.rstrip('/')}/fuzz-new"
    fd = attempt(k.open, new, os.O_CREAT | os.O_RDWR, 0o644)
    if fd is not None:
        attempt(k.pwrite, fd, b"x" * 20000, 0)
        attempt(k.fsync, fd)
        attempt(k.close, fd)
    attempt(k.mkdir, f"{root.rstrip('/')}/fuzz-dir", 0o755)
    attempt(k.rename, new, f"{root.rstrip('/')}/fuzz-dir/moved")
    for name in (attempt(k.listdir, root) or [])[:6]:
        p = f"{root.rstrip('/')}/{name}"
        st = attempt(k.lstat, p)
        if st is not None and st.st_mode & 0o170000 == 0o100000:
            attempt(k.truncate, p, st.st_size // 2)
            fd = attempt(k.open, p, os.O_WRONLY | os.O_APPEND)
            if fd is not None:
                attempt(k.write, fd, b"appended")
                attempt(k.close, fd)
        elif st is not None and st.st_mode & 0o170000 == 0o120000:
            attempt(k.unlink, p)
    attempt(k.statvfs, root)
    return seen


def _child(conn: Any, fn: Callable[[], list[str]], as_limit: int) -> None:
    try:
        resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))
        errs = fn()
        conn.send(("ok", len(errs)))
    except BaseException as e:
        conn.send(("raised", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def run_case(fn: Callable[[], list[str]], *, timeout: float = 60,
             as_limit: int = 2 << 30) -> tuple[str, str | int]:
    """Run ``fn`` in a forked child: ("ok", number of OSErrors), ("raised",
    traceback), ("hang", "") after ``timeout`` seconds, or ("died", exit code)."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, as_limit), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            proc.kill()
            proc.join()
            return ("hang", "")
        result: tuple[str, str | int] = parent.recv()
        proc.join(10)
        return result
    except EOFError:
        proc.join()
        return ("died", proc.exitcode or 0)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
        parent.close()


def fill_pattern(n: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(256)) * (n // 256)


def place_in_window(image: bytes, host: Path, margin: int = 1 << 20) -> tuple[int, int]:
    """Write ``image`` into ``host`` between two ``margin``-byte patterned guards;
    returns (begin, size) of the window."""
    guard = fill_pattern(margin)
    host.write_bytes(guard + image + guard)
    return margin, len(image)
