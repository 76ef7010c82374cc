"""Linux's own tools through the mount, each compared with the same commands on a
host tmpfs directory: ``fallocate(1)`` allocates, punches and reports as on
tmpfs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

TIMEOUT = 120


def run(argv: list[str], cwd: Path) -> str:
    env = dict(os.environ, LC_ALL="C", TZ="UTC")
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                         env=env, check=False)
    assert res.returncode == 0, f"{argv} failed in {cwd}: {res.stderr}"
    return res.stdout


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (scripts/bootstrap installs it)")


def test_fallocate_tool(mnt: Path, shm: Path) -> None:
    need("fallocate")
    results = []
    for root in (mnt, shm):
        f = root / "f"
        run(["fallocate", "-l", "40000", "f"], root)
        a = os.stat(f)
        run(["fallocate", "-n", "-o", "40960", "-l", "8192", "f"], root)
        b = os.stat(f)
        with open(f, "r+b") as fh:
            fh.write(b"y" * 20000)
        run(["fallocate", "-p", "-o", "100", "-l", "9000", "f"], root)
        c = os.stat(f)
        with open(f, "rb") as fh:
            data = fh.read()
            holes = []
            fd = fh.fileno()
            pos = 0
            while pos < c.st_size:
                try:
                    d = os.lseek(fd, pos, os.SEEK_DATA)
                except OSError:
                    break
                h = os.lseek(fd, d, os.SEEK_HOLE)
                holes.append((d, h))
                pos = h
        refused = subprocess.run(["fallocate", "-z", "-o", "0", "-l", "4096", "f"], cwd=root,
                                 capture_output=True, check=False).returncode
        results.append(((a.st_size, a.st_blocks), (b.st_size, b.st_blocks),
                        (c.st_size, c.st_blocks), data.count(b"y"), holes, refused))
    assert results[0] == results[1]
