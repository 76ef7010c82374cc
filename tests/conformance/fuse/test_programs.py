"""Real programs on the mount, each compared with the same steps on a host tmpfs directory."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TIMEOUT = 120


def run(argv: list[str], cwd: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LC_ALL="C", TZ="UTC", GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd))
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                         env=env, check=False, **kw)  # type: ignore[call-overload]
    assert res.returncode == 0, f"{argv} failed in {cwd}: {res.stderr}"
    return res  # type: ignore[no-any-return]


def snapshot(root: Path, *, times: bool = True) -> list[tuple[object, ...]]:
    """Everything observable about a tree, minus inode numbers and directory sizes.

    Hard links show as groups of names sharing one inode.
    """
    rows: list[tuple[object, ...]] = []
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            row: list[object] = [rel, stat.filemode(st.st_mode), st.st_uid, st.st_gid]
            if stat.S_ISREG(st.st_mode):
                row += [st.st_size, st.st_nlink, hashlib.sha256(p.read_bytes()).hexdigest()]
                inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                row += [os.readlink(p)]
            if times and not stat.S_ISLNK(st.st_mode) and not stat.S_ISDIR(st.st_mode):
                row += [st.st_mtime_ns]
            rows.append(tuple(row))
    rows.append(("hardlinks", sorted(sorted(v) for v in inodes.values() if len(v) > 1)))
    return rows


def make_tree(root: Path) -> None:
    """A small tree with dirs, files of several sizes, symlinks, hard links, odd modes."""
    (root / "src" / "deep" / "deeper").mkdir(parents=True)
    (root / "src" / "empty").mkdir()
    (root / "src" / "a.txt").write_text("alpha\n" * 100)
    (root / "src" / "deep" / "b.bin").write_bytes(bytes(range(256)) * 1000)
    (root / "src" / "deep" / "deeper" / "c").write_bytes(b"")
    (root / "src" / "big").write_bytes(hashlib.sha512(b"x").digest() * 20000)
    os.symlink("a.txt", root / "src" / "link-to-a")
    os.symlink("deep/deeper", root / "src" / "dirlink")
    os.symlink("../nowhere", root / "src" / "dangling")
    os.link(root / "src" / "a.txt", root / "src" / "deep" / "hard-a")
    os.chmod(root / "src" / "deep" / "b.bin", 0o600)
    os.chmod(root / "src" / "empty", 0o700)
    os.utime(root / "src" / "a.txt", ns=(1_500_000_000_000_000_000, 1_500_000_000_123_456_789))


def both(mnt: Path, shm: Path) -> list[Path]:
    return [mnt, shm]


def test_cp_a(mnt: Path, shm: Path, tmp_path: Path) -> None:
    make_tree(tmp_path)
    for root in both(mnt, shm):
        run(["cp", "-a", str(tmp_path / "src"), str(root / "copy")], root)
    assert snapshot(mnt / "copy") == snapshot(shm / "copy") == snapshot(tmp_path / "src")


def test_tar_create_and_extract(mnt: Path, shm: Path) -> None:
    results = []
    for root in both(mnt, shm):
        make_tree(root)
        run(["tar", "-cf", "t.tar", "src"], root)
        (root / "out").mkdir()
        run(["tar", "-xpf", "../t.tar"], root / "out")
        listing = run(["tar", "-tf", "t.tar"], root).stdout
        # tar keeps whole seconds: compare times only where they were set
        assert snapshot(root / "out" / "src", times=False) == snapshot(root / "src", times=False)
        assert os.stat(root / "out" / "src" / "a.txt").st_mtime_ns == 1_500_000_000 * 10**9
        results.append((snapshot(root / "out", times=False), sorted(listing.splitlines())))
    assert results[0] == results[1]


def test_mv_ln_find_stat(mnt: Path, shm: Path) -> None:
    outs = []
    for root in both(mnt, shm):
        make_tree(root)
        run(["mv", "src/a.txt", "src/deep/moved.txt"], root)
        run(["mv", "src/empty", "src/deep/empty2"], root)
        run(["ln", "src/deep/moved.txt", "src/hard2"], root)
        run(["ln", "-s", "deep/moved.txt", "src/soft2"], root)
        run(["ln", "-sf", "deep/b.bin", "src/soft2"], root)
        find = run(["find", ".", "-printf", "%p %y %m %n %s %l\n"], root).stdout
        find = "\n".join(sorted(ln for ln in find.splitlines() if not ln.startswith(". ")))
        st = run(["stat", "-c", "%n %A %h %s %F %N %u %g", "src/deep/moved.txt",
                  "src/soft2", "src/hard2", "src/deep/b.bin", "src/dangling"], root).stdout
        outs.append((find, st, snapshot(root, times=False)))
    assert outs[0][0] == outs[1][0]
    assert outs[0][1] == outs[1][1]
    assert outs[0][2] == outs[1][2]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git(mnt: Path, shm: Path) -> None:
    git = ["git", "-c", "user.name=Rump Tester", "-c", "user.email=rump@example.org",
           "-c", "init.defaultBranch=main", "-c", "core.fsync=all"]
    env_dates = {"GIT_AUTHOR_DATE": "2020-01-01T00:00:00Z",
                 "GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z"}
    outs = []
    for root in both(mnt, shm):
        repo = root / "repo"
        repo.mkdir()
        run([*git, "init", "-q"], repo)
        (repo / "README").write_text("hello\n")
        (repo / "sub").mkdir()
        (repo / "sub" / "data.bin").write_bytes(os.urandom(0) + bytes(range(256)) * 100)
        os.symlink("README", repo / "link")
        run([*git, "add", "-A"], repo)
        env = dict(os.environ, **env_dates, HOME=str(root), LC_ALL="C")
        subprocess.run([*git, "commit", "-q", "-m", "first"], cwd=repo, env=env, check=True,
                       timeout=TIMEOUT, capture_output=True)
        (repo / "README").write_text("hello again\n")
        subprocess.run([*git, "commit", "-q", "-am", "second"], cwd=repo, env=env,
                       check=True, timeout=TIMEOUT, capture_output=True)
        run([*git, "gc", "-q"], repo)  # packs: mmap'd by git
        log = run([*git, "log", "--format=%H %s", "--stat"], repo).stdout
        fsck = run([*git, "fsck", "--full", "--strict"], repo)
        status = run([*git, "status", "--porcelain"], repo).stdout
        outs.append((log, status, fsck.returncode))
    assert outs[0] == outs[1]
    assert "second" in outs[0][0] and outs[0][1] == ""


SQLITE_SCRIPT = textwrap.dedent("""
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1])
    db.execute("pragma journal_mode=" + sys.argv[2])
    db.execute("create table t (id integer primary key, name text, blob blob)")
    with db:
        db.executemany("insert into t (name, blob) values (?, ?)",
                       [(f"row{i}", bytes(i % 256) * 50) for i in range(5000)])
    db.execute("create index t_name on t(name)")
    with db:
        db.execute("delete from t where id % 3 = 0")
        db.execute("update t set name = name || '!' where id % 5 = 0")
    db.execute("vacuum")
    db.close()
    db = sqlite3.connect(sys.argv[1])
    print(db.execute("select count(*), sum(length(blob)), max(name) from t").fetchone())
    print(db.execute("pragma integrity_check").fetchone())
""")


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_sqlite(mnt: Path, shm: Path, journal: str) -> None:
    outs = []
    for root in both(mnt, shm):
        res = run([sys.executable, "-c", SQLITE_SCRIPT, str(root / "db.sqlite"), journal], root)
        outs.append(res.stdout)
    assert outs[0] == outs[1]
    assert "('ok',)" in outs[0]
