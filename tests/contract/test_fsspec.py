"""The fsspec adapter (rumpfs.frontends.fsspec): fsspec's own abstract suites + ours.

fsspec ships its contract as mixin classes in ``fsspec.tests.abstract``
(copy, get, put, open, pipe); each needs the fixtures ``fs``, ``fs_join`` and
``fs_path`` (``local_*`` come with the mixins).  ``fs`` here is function
scoped: every test gets a fresh kernel.  fsspec's ``mv`` module has no mixin
(only tests of its local file system), so ``TestRumpMv`` below covers mv.
"""

from __future__ import annotations

import datetime
import errno
import io
import os
import posixpath
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
from fsspec.tests import abstract

from rumpfs.frontends.fsspec import RumpBufferedReader, RumpFileSystem


@pytest.fixture(autouse=True, scope="module")
def _register() -> None:
    # The fsspec.specs entry point registers "rumpfs" once the package is
    # installed; this keeps the suite working from a plain source checkout.
    if "rumpfs" not in fsspec.available_protocols():
        fsspec.register_implementation("rumpfs", RumpFileSystem, clobber=True)


@pytest.fixture
def kernel() -> Iterator[Any]:
    from rumpfs import Kernel

    with Kernel() as k:
        yield k


class RumpFixtures(abstract.AbstractFixtures):  # type: ignore[misc]  # fsspec is untyped
    @pytest.fixture
    def fs(self, kernel: Any) -> RumpFileSystem:
        # auto_mkdir=True, as fsspec's own LocalFileSystem fixtures use.
        return RumpFileSystem(kernel=kernel, auto_mkdir=True)

    @pytest.fixture
    def fs_join(self) -> Any:
        return posixpath.join

    @pytest.fixture
    def fs_path(self, fs: RumpFileSystem) -> str:
        fs.makedirs("/base")
        return "/base"


class TestRumpCopy(abstract.AbstractCopyTests, RumpFixtures):  # type: ignore[misc]
    pass


class TestRumpGet(abstract.AbstractGetTests, RumpFixtures):  # type: ignore[misc]
    pass


class TestRumpPut(abstract.AbstractPutTests, RumpFixtures):  # type: ignore[misc]
    pass


class TestRumpOpen(abstract.AbstractOpenTests, RumpFixtures):  # type: ignore[misc]
    pass


class TestRumpPipe(abstract.AbstractPipeTests, RumpFixtures):  # type: ignore[misc]
    pass


# -- our own tests ---------------------------------------------------------------


@pytest.fixture
def rfs(kernel: Any) -> RumpFileSystem:
    return RumpFileSystem(kernel=kernel)


def test_filesystem_by_protocol_needs_kernel(kernel: Any) -> None:
    f = fsspec.filesystem("rumpfs", kernel=kernel)
    assert isinstance(f, RumpFileSystem) and f.kernel is kernel
    with pytest.raises(TypeError, match="needs a kernel"):
        fsspec.filesystem("rumpfs")
    with pytest.raises(TypeError, match=r"must be a rumpfs\.Kernel"):
        fsspec.filesystem("rumpfs", kernel="/tmp")


def test_instances_are_per_kernel(kernel: Any) -> None:
    from rumpfs import Kernel

    a = fsspec.filesystem("rumpfs", kernel=kernel)
    with Kernel() as other:
        b = fsspec.filesystem("rumpfs", kernel=other)
        assert a is not b and a != b and b.kernel is other
        a.pipe_file("/only-in-a", b"x")
        assert a.exists("/only-in-a") and not b.exists("/only-in-a")
    assert fsspec.filesystem("rumpfs", kernel=kernel) == a


def test_strip_protocol() -> None:
    s = RumpFileSystem._strip_protocol
    assert s("rumpfs://a/b") == "/a/b"
    assert s("rumpfs:///a/b/") == "/a/b"
    assert s("/a//b/./c") == "/a/b/c"
    assert s("a/b") == "/a/b"
    assert s("rumpfs://") == "/"
    assert s(["rumpfs://x", "/y"]) == ["/x", "/y"]


def test_url_roundtrip(kernel: Any) -> None:
    with fsspec.open("rumpfs://dir/f.txt", "w", kernel=kernel, auto_mkdir=True) as f:
        f.write("via url")
    with kernel.open_file("/dir/f.txt") as f:
        assert f.read() == "via url"
    with fsspec.open("rumpfs://dir/f.txt", "rb", kernel=kernel) as f:
        assert f.read() == b"via url"
    fs, path = fsspec.core.url_to_fs("rumpfs://dir/f.txt", kernel=kernel)
    assert isinstance(fs, RumpFileSystem) and path == "/dir/f.txt"
    assert fs.unstrip_protocol(path) == "rumpfs://dir/f.txt"


def test_ls_info_find_du_glob(rfs: RumpFileSystem) -> None:
    rfs.makedirs("/d/sub")
    rfs.pipe_file("/d/a.txt", b"aaa")
    rfs.pipe_file("/d/sub/b.csv", b"bb")
    assert rfs.ls("/d", detail=False) == ["/d/a.txt", "/d/sub"]
    details = {i["name"]: i for i in rfs.ls("/d")}
    assert details["/d/a.txt"]["type"] == "file" and details["/d/a.txt"]["size"] == 3
    assert details["/d/sub"]["type"] == "directory"
    assert rfs.ls("/d/a.txt", detail=False) == ["/d/a.txt"]
    info = rfs.info("rumpfs://d/a.txt")
    assert info["name"] == "/d/a.txt" and info["islink"] is False
    assert rfs.find("/d") == ["/d/a.txt", "/d/sub/b.csv"]
    assert rfs.find("/d", withdirs=True) == ["/d", "/d/a.txt", "/d/sub", "/d/sub/b.csv"]
    assert rfs.du("/d") == 5
    assert rfs.du("/d", total=False) == {"/d/a.txt": 3, "/d/sub/b.csv": 2}
    assert rfs.glob("/d/*.txt") == ["/d/a.txt"]
    assert rfs.glob("/d/**/*.csv") == ["/d/sub/b.csv"]
    assert rfs.isdir("/d") and rfs.isfile("/d/a.txt") and not rfs.isfile("/d")
    assert rfs.exists("/d/sub") and not rfs.exists("/nope")
    with pytest.raises(FileNotFoundError):
        rfs.info("/nope")
    with pytest.raises(FileNotFoundError):
        rfs.ls("/nope")


def test_symlinks_in_listings(rfs: RumpFileSystem) -> None:
    rfs.pipe_file("/target", b"1234")
    rfs.symlink("/target", "/ln")
    rfs.symlink("/missing", "/dangling")
    i = rfs.info("/ln")
    assert i["islink"] is True and i["type"] == "file" and i["size"] == 4
    assert i["destination"] == "/target"
    d = rfs.info("/dangling")
    assert d["type"] == "other" and d["islink"] is True
    assert not rfs.exists("/dangling") and rfs.lexists("/dangling")
    rfs.rm("/dangling")
    assert not rfs.lexists("/dangling")


def test_open_is_buffered_and_seekable(rfs: RumpFileSystem) -> None:
    with rfs.open("/f.bin", "wb", block_size=4) as f:
        assert isinstance(f, io.BufferedWriter)
        f.write(b"0123456789")
    with rfs.open("/f.bin", "rb") as f:
        assert isinstance(f, io.BufferedReader) and f.seekable()
        assert isinstance(f, RumpBufferedReader)
        assert f.size == 10
        f.seek(-3, os.SEEK_END)
        assert f.read() == b"789"
        f.seek(2)
        assert f.read(2) == b"23"
    with rfs.open("/f.bin", "r+b") as f:
        f.seek(5)
        f.write(b"X")
    with rfs.open("/f.bin", "ab") as f:
        f.write(b"!")
    with rfs.open("/f.bin", "rt", encoding="ascii") as t:
        assert t.read() == "01234X6789!"
    with pytest.raises(FileNotFoundError):
        rfs.open("/no/such/dir/f", "wb")  # auto_mkdir is off by default


def test_cat_pipe_ranges(rfs: RumpFileSystem) -> None:
    rfs.pipe("/p", b"abcdef")
    assert rfs.cat("/p") == b"abcdef"
    assert rfs.cat_file("/p", start=1, end=3) == b"bc"
    assert rfs.cat_file("/p", start=-2) == b"ef"
    assert rfs.cat_file("/p", end=-4) == b"ab"
    assert rfs.cat_file("/p", start=4, end=2) == b""
    assert rfs.head("/p", 2) == b"ab" and rfs.tail("/p", 2) == b"ef"
    rfs.pipe({"/q1": b"1", "/q2": b"2"})
    assert rfs.cat(["/q1", "/q2"]) == {"/q1": b"1", "/q2": b"2"}
    with pytest.raises(FileExistsError):
        rfs.pipe_file("/p", b"x", mode="create")
    assert rfs.read_text("/p") == "abcdef"
    rfs.write_text("/t", "text")
    assert rfs.read_bytes("/t") == b"text"


def test_mkdir_makedirs_rmdir(rfs: RumpFileSystem) -> None:
    rfs.mkdir("/a/b/c")  # create_parents=True by default
    assert rfs.isdir("/a/b/c")
    with pytest.raises(FileExistsError):
        rfs.mkdir("/a/b/c")
    with pytest.raises(FileNotFoundError):
        rfs.mkdir("/x/y", create_parents=False)
    rfs.makedirs("/a/b/c", exist_ok=True)
    with pytest.raises(FileExistsError):
        rfs.makedirs("/a/b/c")
    rfs.rmdir("/a/b/c")
    assert not rfs.exists("/a/b/c")
    with pytest.raises(OSError) as ei:
        rfs.rmdir("/a")
    assert ei.value.errno == errno.ENOTEMPTY


def test_rm_variants(rfs: RumpFileSystem) -> None:
    rfs.makedirs("/t/x/y")
    for p in ("/t/1", "/t/x/2", "/t/x/y/3", "/t/keep.md"):
        rfs.touch(p)
    rfs.rm_file("/t/1")
    assert not rfs.exists("/t/1")
    with pytest.raises(OSError):
        rfs.rm("/t/x")  # not empty, not recursive
    rfs.rm("/t/x", recursive=True)
    assert rfs.find("/t", withdirs=True) == ["/t", "/t/keep.md"]
    rfs.touch("/t/a.log")
    rfs.touch("/t/b.log")
    rfs.rm("/t/*.log")
    assert rfs.ls("/t", detail=False) == ["/t/keep.md"]
    rfs.mkdir("/t/empty")
    rfs.rm("/t/empty")  # an empty directory goes without recursive, like rm -d
    rfs.rm(["/t/keep.md"])
    assert rfs.ls("/t") == []
    with pytest.raises(FileNotFoundError):
        rfs.rm("/t/nope")


def test_cp_and_copy_tree(rfs: RumpFileSystem) -> None:
    rfs.makedirs("/src/sub")
    rfs.pipe_file("/src/f", b"F" * 3_000_000)
    rfs.pipe_file("/src/sub/g", b"G")
    rfs.cp_file("/src/f", "/f2")
    assert rfs.cat("/f2") == b"F" * 3_000_000
    rfs.cp("/src", "/dst", recursive=True)
    assert rfs.find("/dst") == ["/dst/f", "/dst/sub/g"]
    assert rfs.cat("/dst/sub/g") == b"G"


class TestRumpMv:
    def test_rename_file_and_dir(self, rfs: RumpFileSystem) -> None:
        rfs.makedirs("/d/sub")
        rfs.pipe_file("/d/sub/f", b"x")
        ino = rfs.info("/d/sub/f")["ino"]
        rfs.mv("/d/sub/f", "/d/g")
        assert rfs.info("/d/g")["ino"] == ino  # a rename, not a copy
        rfs.mv("/d/sub", "/moved")
        assert rfs.isdir("/moved") and not rfs.exists("/d/sub")

    def test_into_existing_directory(self, rfs: RumpFileSystem) -> None:
        rfs.makedirs("/dir")
        rfs.pipe_file("/f", b"x")
        rfs.mv("/f", "/dir")
        assert rfs.cat("/dir/f") == b"x"
        rfs.makedirs("/tree/a")
        rfs.mv("/tree", "/dir/")
        assert rfs.isdir("/dir/tree/a")

    def test_missing_parent_and_source(self, rfs: RumpFileSystem) -> None:
        rfs.pipe_file("/f", b"x")
        with pytest.raises(FileNotFoundError):
            rfs.mv("/f", "/no/such/dir/f")
        with pytest.raises(FileNotFoundError):
            rfs.mv("/missing", "/g")
        rfs.mv("/f", "/f")  # same path: nothing happens
        assert rfs.cat("/f") == b"x"

    def test_glob_and_list_sources(self, rfs: RumpFileSystem) -> None:
        rfs.makedirs("/out")
        for n in ("a.txt", "b.txt", "c.bin"):
            rfs.pipe_file(f"/{n}", n.encode())
        rfs.mv("/*.txt", "/out/")
        assert rfs.ls("/out", detail=False) == ["/out/a.txt", "/out/b.txt"]
        assert not rfs.exists("/a.txt")
        rfs.mv(["/c.bin"], ["/out/c.bin"])
        assert rfs.cat("/out/c.bin") == b"c.bin"

    def test_permission_denied_as_process(self, kernel: Any) -> None:
        kernel.mkdir("/ro", 0o555)
        kernel.open_file("/mine", "wb").close()
        kernel.chmod("/mine", 0o666)
        kernel.chmod("/", 0o777)
        alice = kernel.process(uid=1000, gid=1000)
        afs = fsspec.filesystem("rumpfs", kernel=alice)
        with pytest.raises(PermissionError):
            afs.mv("/mine", "/ro/mine")
        assert not kernel.path("/ro/mine").exists()


def test_touch_modified_created_checksum(rfs: RumpFileSystem, kernel: Any) -> None:
    rfs.pipe_file("/f", b"data")
    kernel.utime("/f", (1_000_000_000, 1_000_000_000))
    assert rfs.modified("/f") == datetime.datetime.fromtimestamp(
        1_000_000_000, tz=datetime.UTC
    )
    assert isinstance(rfs.created("/f"), datetime.datetime)
    c1 = rfs.checksum("/f")
    assert c1 == rfs.checksum("/f")
    rfs.touch("/f", truncate=False)
    assert rfs.cat("/f") == b"data"
    assert rfs.modified("/f").year > 2001
    c2 = rfs.checksum("/f")
    assert c2 != c1
    rfs.touch("/f")  # truncate=True empties it
    assert rfs.cat("/f") == b"" and rfs.checksum("/f") != c2
    assert rfs.ukey("/f") == f"{rfs.checksum('/f'):032x}"


def test_get_put_to_host(rfs: RumpFileSystem, tmp_path: Any) -> None:
    host = tmp_path / "h.txt"
    host.write_bytes(b"from host")
    rfs.put(str(host), "/in-kernel.txt")
    assert rfs.cat("/in-kernel.txt") == b"from host"
    rfs.get("/in-kernel.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_bytes() == b"from host"


def test_process_credentials_apply(kernel: Any) -> None:
    kernel.open_file("/secret", "wb").close()
    kernel.chmod("/secret", 0o600)
    alice = fsspec.filesystem("rumpfs", kernel=kernel.process(uid=1000, gid=1000))
    assert alice.exists("/secret")
    with pytest.raises(PermissionError):
        alice.cat("/secret")


def test_mapper(rfs: RumpFileSystem) -> None:
    m = rfs.get_mapper("/store")
    m["k1"] = b"v1"
    m["sub/k2"] = b"v2"
    assert sorted(m) == ["k1", "sub/k2"]
    assert rfs.cat("/store/sub/k2") == b"v2"


def test_pandas_read_csv(kernel: Any) -> None:
    pd = pytest.importorskip("pandas")
    with kernel.open_file("/data.csv", "w") as f:
        f.write("a,b\n1,2\n3,4\n")
    df = pd.read_csv("rumpfs://data.csv", storage_options={"kernel": kernel})
    assert list(df.columns) == ["a", "b"] and df["b"].sum() == 6
    df["c"] = df["a"] * 10
    df.to_csv("rumpfs://out.csv", index=False, storage_options={"kernel": kernel})
    with kernel.open_file("/out.csv") as f:
        assert f.read().splitlines() == ["a,b,c", "1,2,10", "3,4,30"]


def test_mv_across_mounts_copies(kernel: Any, tmp_path: Any) -> None:
    from rumpfs import EtfsType

    (tmp_path / "host").mkdir()
    kernel.etfs_register("/data", str(tmp_path / "host"), EtfsType.DIR_SUBDIRS)
    rfs = RumpFileSystem(kernel=kernel)
    rfs.makedirs("/src/sub")
    rfs.pipe_file("/src/sub/f", b"payload")
    rfs.mv("/src", "/data/")  # rename gives EXDEV: copy, then delete
    assert not rfs.exists("/src")
    assert rfs.cat("/data/src/sub/f") == b"payload"
    assert (tmp_path / "host" / "src" / "sub" / "f").read_bytes() == b"payload"
    assert rfs.ls("/data", detail=False) == ["/data/src"]
