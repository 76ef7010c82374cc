"""RumpPath: pathlib's interface over a kernel's namespace (rumpfs.path)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import PurePosixPath

import pytest

from rumpfs.path import RumpPath


@pytest.fixture
def k() -> Iterator[object]:
    from rumpfs import Kernel

    with Kernel() as kernel:
        yield kernel


@pytest.fixture
def root(k: object) -> RumpPath:
    return RumpPath(k, "/")  # type: ignore[arg-type]


# -- pure operations ----------------------------------------------------------


def test_join_and_pure_accessors(root: RumpPath) -> None:
    p = root / "a" / "b.tar.gz"
    assert str(p) == "/a/b.tar.gz"
    assert p.name == "b.tar.gz"
    assert p.stem == "b.tar"
    assert p.suffix == ".gz"
    assert p.suffixes == [".tar", ".gz"]
    assert p.parts == ("/", "a", "b.tar.gz")
    assert p.parent == root / "a"
    assert list(p.parents) == [root / "a", root]
    assert p.with_name("c") == root / "a" / "c"
    assert p.with_suffix(".bz2").name == "b.tar.bz2"
    assert p.with_stem("x").name == "x.gz"
    assert root.joinpath("a", "b") == root / "a/b"
    assert (root / "a" / "/abs") == root / "abs"  # absolute segment restarts, as pathlib
    assert p.relative_to("/a") == RumpPath(root.kernel, "b.tar.gz")
    assert p.is_relative_to(root / "a")
    assert p.match("*.gz")
    assert p.is_absolute() and not RumpPath(root.kernel, "rel").is_absolute()
    assert p.as_posix() == "/a/b.tar.gz"
    assert p.pure == PurePosixPath("/a/b.tar.gz")
    assert RumpPath(root.kernel) == root  # no path: the root


def test_eq_hash_are_per_kernel(k: object) -> None:
    from rumpfs import Kernel

    a = RumpPath(k, "/x")  # type: ignore[arg-type]
    assert a == RumpPath(k, "/x")  # type: ignore[arg-type]
    assert hash(a) == hash(RumpPath(k, "/", "x"))  # type: ignore[arg-type]
    assert a != RumpPath(k, "/y")  # type: ignore[arg-type]
    assert a != "/x"
    assert a != PurePosixPath("/x")
    with Kernel() as other:
        b = RumpPath(other, "/x")
        assert a != b
        assert len({a, b}) == 2
        with pytest.raises(TypeError):
            _ = a < b
        with pytest.raises(ValueError, match="another kernel"):
            _ = a / b
    assert sorted([RumpPath(k, "/y"), a]) == [a, RumpPath(k, "/y")]  # type: ignore[arg-type]


def test_str_repr_and_no_fspath(root: RumpPath) -> None:
    p = root / "etc" / "passwd"
    assert str(p) == "/etc/passwd"
    assert repr(p).startswith("RumpPath(") and "'/etc/passwd'" in repr(p)
    # A RumpPath names a file in the kernel: host functions must refuse it.
    assert not isinstance(p, os.PathLike)
    with pytest.raises(TypeError):
        os.fspath(p)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        open(p)  # type: ignore[call-overload]  # noqa: SIM115


def test_constructor_checks_kernel_argument() -> None:
    with pytest.raises(TypeError, match="kernel"):
        RumpPath("/a/b")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RumpPath(object(), b"/bytes")  # type: ignore[arg-type]


def test_kernel_path_returns_rumppath(k: object) -> None:
    p = k.path("/a/b")  # type: ignore[attr-defined]
    assert isinstance(p, RumpPath)
    assert p == RumpPath(k, "/a/b")  # type: ignore[arg-type]


# -- files ----------------------------------------------------------------------


def test_write_read_roundtrip(root: RumpPath) -> None:
    p = root / "notes.txt"
    assert not p.exists()
    assert p.write_text("héllo\n", encoding="utf-8") == 6
    assert p.exists() and p.is_file() and not p.is_dir() and not p.is_symlink()
    assert p.read_text(encoding="utf-8") == "héllo\n"
    assert p.read_bytes() == "héllo\n".encode()
    assert p.write_bytes(bytearray(b"\x00\x01")) == 2
    assert p.read_bytes() == b"\x00\x01"
    assert p.stat().st_size == 2
    with pytest.raises(TypeError):
        p.write_text(b"bytes")  # type: ignore[arg-type]


def test_open_modes_and_seek(root: RumpPath) -> None:
    p = root / "f.bin"
    with p.open("wb") as f:
        f.write(b"0123456789")
    with p.open("rb") as f:
        f.seek(4)
        assert f.read(3) == b"456"
        assert f.tell() == 7
    with p.open("r+b") as f:
        f.seek(2)
        f.write(b"xx")
    with p.open("ab") as f:
        f.write(b"!")
    assert p.read_bytes() == b"01xx456789!"
    with p.open("r", newline="") as t:
        assert t.read() == "01xx456789!"
    with pytest.raises(FileExistsError):
        p.open("xb")


def test_missing_file_errors_carry_errno(root: RumpPath) -> None:
    with pytest.raises(FileNotFoundError) as ei:
        (root / "nope").read_bytes()
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(FileNotFoundError):
        (root / "nope").stat()
    with pytest.raises(FileNotFoundError):
        (root / "nope").unlink()
    (root / "nope").unlink(missing_ok=True)


def test_touch(root: RumpPath) -> None:
    p = root / "t"
    p.touch()
    assert p.is_file() and p.stat().st_size == 0
    os_times = (1_000_000, 1_000_000)
    p.kernel.utime(str(p), os_times)
    p.touch()  # exists: only the times change
    assert p.stat().st_mtime > 1_000_000
    with pytest.raises(FileExistsError):
        p.touch(exist_ok=False)
    q = root / "q"
    q.touch(mode=0o600, exist_ok=False)
    assert stat.S_IMODE(q.stat().st_mode) == 0o600 & ~0o022


# -- directories ------------------------------------------------------------------


def test_mkdir_variants(root: RumpPath) -> None:
    d = root / "a" / "b" / "c"
    with pytest.raises(FileNotFoundError):
        d.mkdir()
    d.mkdir(parents=True)
    assert d.is_dir() and (root / "a").is_dir()
    with pytest.raises(FileExistsError):
        d.mkdir()
    d.mkdir(exist_ok=True)
    d.mkdir(parents=True, exist_ok=True)
    f = root / "file"
    f.touch()
    with pytest.raises(FileExistsError):
        f.mkdir(exist_ok=True)  # exists, but not as a directory
    with pytest.raises(NotADirectoryError):
        (f / "sub").mkdir(parents=True)
    root.mkdir(exist_ok=True)
    e = root / "modes"
    e.mkdir(mode=0o700)
    assert stat.S_IMODE(e.stat().st_mode) == 0o700


def test_iterdir_rmdir(root: RumpPath) -> None:
    d = root / "d"
    d.mkdir()
    for n in ("x", "y", "z"):
        (d / n).touch()
    assert sorted(d.iterdir()) == [d / "x", d / "y", d / "z"]
    with pytest.raises(OSError) as ei:
        d.rmdir()
    assert ei.value.errno == errno.ENOTEMPTY
    for c in list(d.iterdir()):
        c.unlink()
    d.rmdir()
    assert not d.exists()
    f = root / "f"
    f.touch()
    with pytest.raises(NotADirectoryError):
        list(f.iterdir())


def test_rename_and_replace(root: RumpPath) -> None:
    a = root / "a"
    a.write_text("A")
    b = a.rename(root / "b")
    assert b == root / "b" and b.read_text() == "A" and not a.exists()
    c = root / "c"
    c.write_text("C")
    got = b.replace(str(c))
    assert got == c and c.read_text() == "A" and not b.exists()


def test_chmod_and_lstat(root: RumpPath) -> None:
    p = root / "m"
    p.touch()
    p.chmod(0o640)
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    assert p.lstat().st_ino == p.stat().st_ino


# -- links and resolution --------------------------------------------------------


def test_symlinks(root: RumpPath) -> None:
    (root / "dir").mkdir()
    (root / "dir" / "f").write_text("x")
    link = root / "ln"
    link.symlink_to("dir/f")
    assert link.is_symlink() and link.is_file() and link.exists()
    assert link.readlink() == RumpPath(root.kernel, "dir/f")
    assert link.read_text() == "x"
    assert link.resolve() == root / "dir" / "f"
    assert link.samefile(root / "dir" / "f")
    assert link.samefile("/dir/f")
    dangling = root / "dangling"
    dangling.symlink_to("/nowhere")
    assert dangling.is_symlink() and not dangling.exists()
    assert dangling.exists(follow_symlinks=False)
    assert dangling.resolve() == root / "nowhere"
    with pytest.raises(FileNotFoundError):
        dangling.resolve(strict=True)
    (root / "hard").hardlink_to(root / "dir" / "f")
    assert (root / "hard").stat().st_nlink == 2


def test_resolve_dotdot_and_loops(root: RumpPath) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "up").symlink_to("..")
    assert (root / "a" / "b" / ".." / "up" / "a").resolve() == root / "a"
    assert (root / "a" / "./b/../b").resolve() == root / "a" / "b"
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    with pytest.raises(OSError) as ei:
        (root / "loop1").resolve()
    assert ei.value.errno == errno.ELOOP
    rel = RumpPath(root.kernel, "a/b")
    assert rel.resolve() == root / "a" / "b"  # relative to the kernel's cwd "/"
    assert rel.absolute() == root / "a" / "b"
    assert (root / "a" / "missing" / "x").resolve() == root / "a" / "missing" / "x"


def test_is_mount_root(root: RumpPath) -> None:
    assert root.is_mount()
    (root / "d").mkdir()
    assert not (root / "d").is_mount()


# -- glob ---------------------------------------------------------------------------


@pytest.fixture
def tree(root: RumpPath) -> RumpPath:
    base = root / "t"
    for rel in ("a.txt", "b.py", ".hidden", "sub/c.txt", "sub/deep/d.txt", "sub2/e.py"):
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)
    (base / "link").symlink_to("sub")
    return base


def rel(paths: Iterator[RumpPath], base: RumpPath) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in paths)


def test_glob_patterns(tree: RumpPath) -> None:
    assert rel(tree.glob("*.txt"), tree) == ["a.txt"]
    assert rel(tree.glob("*"), tree) == sorted(
        [".hidden", "a.txt", "b.py", "link", "sub", "sub2"]
    )
    assert rel(tree.glob("?.py"), tree) == ["b.py"]
    assert rel(tree.glob("[ab].*"), tree) == ["a.txt", "b.py"]
    assert rel(tree.glob("*/*.txt"), tree) == ["link/c.txt", "sub/c.txt"]
    assert rel(tree.glob("sub/deep/d.txt"), tree) == ["sub/deep/d.txt"]
    assert rel(tree.glob("nothing*"), tree) == []
    assert rel(tree.glob("*/"), tree) == ["link", "sub", "sub2"]


def test_glob_recursive(tree: RumpPath) -> None:
    # '**' does not descend into the symlinked directory, as pathlib.
    assert rel(tree.glob("**/*.txt"), tree) == ["a.txt", "sub/c.txt", "sub/deep/d.txt"]
    assert rel(tree.rglob("*.py"), tree) == ["b.py", "sub2/e.py"]
    assert rel(tree.glob("**"), tree) == [".", "sub", "sub/deep", "sub2"]
    with pytest.raises(ValueError):
        list(tree.glob(""))
    with pytest.raises(NotImplementedError):
        list(tree.glob("/abs"))
    with pytest.raises(ValueError, match="entire path component"):
        list(tree.glob("a**/x"))


def test_walk(tree: RumpPath) -> None:
    seen = {str(d.relative_to(tree)): (sorted(ds), sorted(fs)) for d, ds, fs in tree.walk()}
    assert seen["."] == (["sub", "sub2"], [".hidden", "a.txt", "b.py", "link"])
    assert seen["sub/deep"] == ([], ["d.txt"])
    bottom_up = [str(d.relative_to(tree)) for d, _, _ in tree.walk(top_down=False)]
    assert bottom_up[-1] == "."


# -- processes: credentials apply -------------------------------------------------


def test_process_paths_use_process_credentials(k: object) -> None:
    root = RumpPath(k, "/")  # type: ignore[arg-type]
    secret = root / "secret"
    secret.write_text("s")
    secret.chmod(0o600)
    alice = k.process(uid=1000, gid=1000)  # type: ignore[attr-defined]
    as_alice = secret.with_kernel(alice)
    assert as_alice.exists()
    with pytest.raises(PermissionError):
        as_alice.read_text()
    assert as_alice != secret  # different kernel object: different path
    home = RumpPath(alice, "/home")
    with pytest.raises(PermissionError):
        home.mkdir()
