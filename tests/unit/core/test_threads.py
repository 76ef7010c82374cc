"""Thread hammer: 8 threads of mixed operations on one kernel, then a full
consistency check of every directory, link count and file size."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter

from rumpfs import Kernel
from rumpfs.fs.rumpfs.node import RumpDir, RumpNode, RumpReg
from rumpfs.vfs.vnode import VType

NAMES = [f"n{i}" for i in range(6)]
DIRS = ["/", "/a", "/b", "/a/c"]


def _worker(k: Kernel, seed: int, errors: list[BaseException]) -> None:
    r = random.Random(seed)
    p = k.process(uid=0, gid=0) if seed % 2 else k
    fds: list[int] = []
    try:
        for _ in range(1500):
            d = r.choice(DIRS)
            path = os.path.join(d, r.choice(NAMES))
            other = os.path.join(r.choice(DIRS), r.choice(NAMES))
            op = r.randrange(12)
            try:
                if op == 0:
                    fds.append(p.open(path, os.O_CREAT | os.O_RDWR, 0o644))
                elif op == 1 and fds:
                    p.close(fds.pop(r.randrange(len(fds))))
                elif op == 2 and fds:
                    p.pwrite(r.choice(fds), os.urandom(r.randrange(1, 9000)),
                             r.randrange(0, 300_000))
                elif op == 3 and fds:
                    p.pread(r.choice(fds), 5000, r.randrange(0, 300_000))
                elif op == 4:
                    p.mkdir(path)
                elif op == 5:
                    p.rmdir(path)
                elif op == 6:
                    p.unlink(path)
                elif op == 7:
                    p.rename(path, other)
                elif op == 8:
                    p.link(path, other)
                elif op == 9:
                    p.listdir(d)
                elif op == 10 and fds:
                    p.ftruncate(r.choice(fds), r.randrange(0, 100_000))
                else:
                    p.stat(path)
            except OSError:
                pass
        for fd in fds:
            p.close(fd)
    except BaseException as e:  # reported to the main thread
        errors.append(e)


def _check_tree(k: Kernel) -> None:
    root = k.vfs.rootvnode
    assert isinstance(root, RumpDir)
    links: Counter[int] = Counter()
    nodes: dict[int, RumpNode] = {}

    def visit(d: RumpDir) -> None:
        assert set(d.entries) == set(d.where)
        live = [name for name in d.slots if name is not None]
        assert sorted(live) == sorted(d.entries)
        assert all(d.slots[i] == name for name, i in d.where.items())
        subdirs = 0
        for node in d.entries.values():
            assert isinstance(node, RumpNode)
            if node.type is VType.VDIR:
                assert isinstance(node, RumpDir)
                assert node.parent is d
                subdirs += 1
                visit(node)
            else:
                links[node.ino] += 1
                nodes[node.ino] = node
        assert d.nlink == 2 + subdirs, (d.ino, d.nlink, subdirs)

    visit(root)
    for ino, count in links.items():
        node = nodes[ino]
        assert node.nlink == count, (ino, node.nlink, count)
        if isinstance(node, RumpReg):
            data = node.data
            assert data.pages == sum(c.mask.bit_count() for c in data.chunks.values())
            for index, chunk in data.chunks.items():
                assert index * (1 << 18) + chunk.start < max(data.size, 1)
            assert node.usecount == 0


def test_eight_threads_leave_a_consistent_kernel() -> None:
    with Kernel() as k:
        for d in DIRS[1:]:
            k.mkdir(d)
        errors: list[BaseException] = []
        threads = [threading.Thread(target=_worker, args=(k, seed, errors)) for seed in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        _check_tree(k)
        assert k.vfs.mounts[0].busy == 1     # only the kernel's cwd/root reference remains
