"""Linux's own tools through the mount, each compared with the same commands on a
host tmpfs directory: ``cp -a`` and ``rsync -aX`` keep extended attributes
and ACLs, ``setfacl``/``getfacl`` agree, ``fallocate(1)`` allocates, punches
and reports as on tmpfs.
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


def xattrs(root: Path) -> list[tuple[str, str, bytes]]:
    """Every user.* attribute and ACL under ``root`` (relative paths, sorted)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            if p.is_symlink():
                continue
            for attr in sorted(os.listxattr(p)):
                if attr.startswith(("user.", "system.posix_acl")):
                    out.append((str(p.relative_to(root)), attr, os.getxattr(p, attr)))
    return sorted(out)


def make_tree(root: Path) -> None:
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "a").write_bytes(b"alpha" * 1000)
    (root / "src" / "sub" / "b").write_bytes(b"beta")
    os.symlink("a", root / "src" / "link")
    os.setxattr(root / "src" / "a", "user.colour", b"blue")
    os.setxattr(root / "src" / "sub", "user.kind", b"directory")
    os.setxattr(root / "src" / "sub" / "b", "user.empty", b"")


@pytest.mark.parametrize("tool", ["cp", "rsync"])
def test_copy_keeps_xattrs_and_acls(mnt: Path, shm: Path, tool: str) -> None:
    need(tool)
    need("setfacl")
    results = []
    for root in (mnt, shm):
        make_tree(root)
        run(["setfacl", "-m", "u:1000:rw,g:100:r", "src/a"], root)
        run(["setfacl", "-d", "-m", "u:1000:rwx", "src/sub"], root)
        if tool == "cp":
            run(["cp", "-a", "src", "dst"], root)
        else:
            run(["rsync", "-aAX", "src/", "dst/"], root)
        results.append((xattrs(root / "dst"), os.stat(root / "dst" / "a").st_mode))
    assert results[0] == results[1]
    assert ("a", "user.colour", b"blue") in results[0][0]


def test_setfacl_getfacl_agree_with_tmpfs(mnt: Path, shm: Path) -> None:
    need("setfacl")
    need("getfacl")
    outputs = []
    for root in (mnt, shm):
        (root / "f").write_bytes(b"x")
        os.chmod(root / "f", 0o640)
        (root / "d").mkdir()
        steps = [
            ["setfacl", "-m", "u:1000:rw,u:2000:r,g:1000:rx", "f"],
            ["setfacl", "-m", "m::r", "f"],
            ["chmod", "0670", "f"],
            ["setfacl", "-x", "u:2000", "f"],
            ["setfacl", "-d", "-m", "u:1000:rwx,o::-", "d"],
            ["touch", "d/new"],
            ["mkdir", "d/newdir"],
        ]
        for step in steps:
            run(step, root)
        # named, not -R: readdir order is the file system's own
        listing = run(["getfacl", "-p", "f", "d", "d/new", "d/newdir"], root)
        outputs.append((listing, oct(os.stat(root / "f").st_mode),
                        oct(os.stat(root / "d" / "new").st_mode)))
        run(["setfacl", "-b", "f"], root)
        outputs.append(run(["getfacl", "-p", "f"], root))
    assert outputs[0] == outputs[2], (outputs[0][0], outputs[2][0])
    assert outputs[1] == outputs[3]


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
