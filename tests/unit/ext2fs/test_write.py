"""The write path: every test that writes ends with ``e2fsck -fn`` clean, and
Linux's driver reads back what the kernel wrote."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from pathlib import Path

import pytest
from tests.support import ext2img as E
from tests.unit.ext2fs.conftest import make_image, mounted


def test_reference_tree_matches_linux(tmp_path: Path, optset: str) -> None:
    img = make_image(tmp_path, optset, tree=False, size=64 << 20)
    with mounted(img) as k:
        E.populate(k, "/mnt")
        ours = E.walk_kernel(k, "/mnt")
    E.e2fsck(img)
    with mounted(img, read_only=True) as k:
        E.assert_same_tree(E.walk_kernel(k, "/mnt"), ours)
    with E.loop_mount(img) as mnt:
        linux = E.walk_host(mnt)
    E.assert_same_tree(ours, linux)


def test_changes_on_a_debugfs_tree(tmp_path: Path, optset: str) -> None:
    img = make_image(tmp_path, optset)
    with mounted(img) as k:
        k.mkdir("/mnt/new")
        k.mkdir("/mnt/new/sub")
        with k.open_file("/mnt/new/f", "wb") as f:
            f.write(b"x" * 100_000)
        k.symlink("target", "/mnt/new/l1")
        k.symlink("T" * 300, "/mnt/new/l2")
        k.link("/mnt/new/f", "/mnt/new/f2")
        k.mknod("/mnt/new/fifo", stat.S_IFIFO | 0o644)
        k.mknod("/mnt/new/sock", stat.S_IFSOCK | 0o644)
        for i in range(300):
            with k.open_file(f"/mnt/new/sub/file{i}", "wb") as f:
                f.write(b"a" * (i * 37))
        for i in range(0, 300, 3):
            k.unlink(f"/mnt/new/sub/file{i}")
        k.rename("/mnt/new/sub", "/mnt/dir/moved")
        assert k.lstat("/mnt/new").st_nlink == 2
        assert k.lstat("/mnt/dir").st_nlink == 4
        assert k.lstat("/mnt/dir/moved/..").st_ino == k.lstat("/mnt/dir").st_ino
        k.rename("/mnt/dir/small", "/mnt/new/small2")
        k.rename("/mnt/new/f2", "/mnt/new/small2")           # replaces a file
        k.rmdir("/mnt/empty")
        k.unlink("/mnt/dir/multi")
        k.truncate("/mnt/new/f", 5000)
        with k.open_file("/mnt/new/f", "rb") as f:
            assert f.read() == b"x" * 5000
        k.truncate("/mnt/new/f", 9000)
        with k.open_file("/mnt/new/f", "rb") as f:
            assert f.read() == b"x" * 5000 + bytes(4000)
        assert k.lstat("/mnt/new/f").st_nlink == 2
        assert k.readlink("/mnt/new/l2") == "T" * 300
        with pytest.raises(OSError) as ei:
            k.rmdir("/mnt/dir")
        assert ei.value.errno == errno.ENOTEMPTY
    E.e2fsck(img)
    with mounted(img, read_only=True) as k:
        assert sorted(k.listdir("/mnt/new")) == ["f", "fifo", "l1", "l2", "small2", "sock"]
        assert len(k.listdir("/mnt/dir/moved")) == 200
        with k.open_file("/mnt/dir/moved/file299", "rb") as f:
            assert f.read() == b"a" * (299 * 37)
        assert k.lstat("/mnt/dir/hardlink").st_nlink == 1


def test_unlinked_open_file_lives_until_close(tmp_path: Path) -> None:
    img = make_image(tmp_path, "ext4-4k-256", tree=False)
    with mounted(img) as k:
        free0 = k.statvfs("/mnt").f_bfree
        fd = k.open("/mnt/f", os.O_CREAT | os.O_RDWR, 0o644)
        k.write(fd, b"z" * 200_000)
        k.unlink("/mnt/f")
        assert k.pread(fd, 10, 199_990) == b"z" * 10
        assert k.fstat(fd).st_nlink == 0
        k.close(fd)
        assert k.statvfs("/mnt").f_bfree == free0
    E.e2fsck(img)


def test_fragmented_extent_tree_grows_and_shrinks(tmp_path: Path) -> None:
    """Every other block written: one extent per block, a tree of depth 2 at
    1 KiB blocks; truncating back shrinks it; Linux reads the same bytes."""
    img = tmp_path / "frag.img"
    E.mkfs(img, E.OptionSet("ext4-1k", "ext4", 1024, 256), 32 << 20)
    data = {}
    with mounted(img) as k:
        fd = k.open("/mnt/frag", os.O_CREAT | os.O_RDWR, 0o644)
        for i in range(0, 2400, 2):
            chunk = E.pattern(1024, i)
            k.pwrite(fd, chunk, i * 1024)
            data[i] = chunk
            if i % 600 == 0:
                k.pwrite(fd, b"filler", 30_000_000 + i * 1024)   # other files' blocks
        k.close(fd)
    E.e2fsck(img)
    out = E.run(["debugfs", "-R", "stat frag", str(img)]).stdout
    assert "Level Entries" in out or "(ETB" in out
    with E.loop_mount(img) as mnt, open(mnt / "frag", "rb") as f:
        for i, chunk in data.items():
            f.seek(i * 1024)
            assert f.read(1024) == chunk
            assert f.read(1024) == bytes(1024)
    with mounted(img) as k:
        k.truncate("/mnt/frag", 100 * 1024)
        with k.open_file("/mnt/frag", "rb") as f:
            assert f.read(1024) == data[0]
    E.e2fsck(img)
    with mounted(img) as k:
        k.unlink("/mnt/frag")
    E.e2fsck(img)


def test_allocation_reaches_uninitialized_groups(tmp_path: Path) -> None:
    """A 1 KiB-block ext4 (metadata_csum, flex_bg): a file bigger than the first
    groups fills BLOCK_UNINIT groups; many directories spread over INODE_UNINIT ones."""
    img = tmp_path / "big.img"
    E.mkfs(img, E.OptionSet("ext4-1k", "ext4", 1024, 256), 48 << 20)
    blob = E.pattern(24 << 20, 7)
    with mounted(img) as k:
        with k.open_file("/mnt/blob", "wb") as f:
            f.write(blob)
        for i in range(40):
            k.mkdir(f"/mnt/d{i}")
            with k.open_file(f"/mnt/d{i}/f", "wb") as f:
                f.write(b"%d" % i)
    E.e2fsck(img)
    with E.loop_mount(img) as mnt:
        assert (mnt / "blob").read_bytes() == blob
        assert (mnt / "d39" / "f").read_bytes() == b"39"


def test_insert_into_htree_directory(tmp_path: Path) -> None:
    names = [f"file-{i:04d}-" + "x" * 40 for i in range(400)]
    for opt in ("ext4-4k-256", "ext3-1k-256"):
        img = make_image(tmp_path, opt, tree=False,
                         script=["mkdir big", "cd big"] + [f"mknod {n} p" for n in names])
        E.run(["e2fsck", "-fyD", str(img)], check=False)
        with mounted(img) as k:
            for i in range(0, 400, 5):
                k.unlink(f"/mnt/big/{names[i]}")
            for i in range(50):
                k.mknod(f"/mnt/big/new-{i}", stat.S_IFIFO | 0o600)
            expect = sorted(set(names) - set(names[::5]) | {f"new-{i}" for i in range(50)})
            assert sorted(k.listdir("/mnt/big")) == expect
        E.e2fsck(img)
        if opt == "ext4-4k-256":                       # room in every leaf: still indexed
            assert "Flags: 0x81000" in E.run(["debugfs", "-R", "stat big", str(img)]).stdout
        with mounted(img) as k:                        # fill the leaves: the index goes
            for i in range(50, 900):
                k.mknod(f"/mnt/big/new-{i}", stat.S_IFIFO | 0o600)
            expect = sorted(set(expect) | {f"new-{i}" for i in range(900)})
            assert sorted(k.listdir("/mnt/big")) == expect
        E.e2fsck(img)
        with E.loop_mount(img) as mnt:
            assert sorted(os.listdir(mnt / "big")) == expect
            for i in range(0, 900, 7):                 # Linux finds them (by the index)
                assert stat.S_ISFIFO(os.lstat(mnt / "big" / f"new-{i}").st_mode)


def test_exchange_and_directory_link_counts(tmp_path: Path) -> None:
    img = make_image(tmp_path, "ext4-4k-256")
    with mounted(img) as k:
        k.mkdir("/mnt/a")
        k.mkdir("/mnt/a/x")
        k.mkdir("/mnt/b")
        k.rename("/mnt/a/x", "/mnt/b/x")
        assert (k.lstat("/mnt/a").st_nlink, k.lstat("/mnt/b").st_nlink) == (2, 3)
        k.mkdir("/mnt/a/y")
        k.rename("/mnt/b/x", "/mnt/a/y")                   # over an empty directory
        assert (k.lstat("/mnt/a").st_nlink, k.lstat("/mnt/b").st_nlink) == (3, 2)
        assert k.lstat("/mnt/a/y/..").st_ino == k.lstat("/mnt/a").st_ino
    E.e2fsck(img)


def test_features(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    img = make_image(tmp_path, "ext4-4k-256", tree=False)
    E.run(["tune2fs", "-O", "quota", str(img)])
    with mounted(img) as k:                              # asked read-write
        with pytest.raises(OSError) as ei:
            k.mkdir("/mnt/x")
        assert ei.value.errno == errno.EROFS
    assert "quota" in caplog.text
    E.e2fsck(img)
    img2 = make_image(tmp_path, "ext2-1k-128", tree=False)
    E.run(["debugfs", "-w", "-R", "ssv feature_incompat 0x80002", str(img2)])
    with pytest.raises(OSError) as ei2, mounted(img2):
        pass
    assert ei2.value.errno == errno.EINVAL
    assert "unsupported incompatible feature(s): unknown(0x80000)" in caplog.text
    # the caller sees the feature too, not only the log: the mount's filename
    # is added without losing the driver's message
    assert ei2.value.strerror == "unsupported ext2 feature(s): unknown(0x80000)"
    assert ei2.value.filename is not None
    img3 = make_image(tmp_path, "ext3-1k-256", tree=False)
    E.run(["debugfs", "-w", "-R", "feature needs_recovery", str(img3)])
    with mounted(img3) as k:
        assert k.listdir("/mnt") == ["lost+found"]
        with pytest.raises(OSError) as ei:
            k.mkdir("/mnt/x")
        assert ei.value.errno == errno.EROFS
    assert "recovery" in caplog.text


def test_clean_journal_untouched(tmp_path: Path) -> None:
    img = make_image(tmp_path, "ext3-1k-256")
    E.run(["debugfs", "-R", f"dump <8> {tmp_path / 'j0'}", str(img)])
    with mounted(img) as k:
        k.mkdir("/mnt/j")
    E.run(["debugfs", "-R", f"dump <8> {tmp_path / 'j1'}", str(img)])
    assert (tmp_path / "j0").read_bytes() == (tmp_path / "j1").read_bytes()
    E.e2fsck(img)
    out = subprocess.run(["dumpe2fs", "-h", str(img)], capture_output=True, text=True).stdout
    assert "clean" in out and "needs_recovery" not in out


@pytest.mark.parametrize("size_mib, args, linux", [
    (64, ["-t", "ext2", "-r", "0"], True),                                 # revision 0
    (64, ["-t", "ext4", "-b", "2048", "-O", "metadata_csum_seed,^has_journal"], True),
    (256, ["-t", "ext4", "-b", "65536"], False),     # Linux with 4 KiB pages cannot mount it
])
def test_other_geometries(tmp_path: Path, size_mib: int, args: list[str], linux: bool) -> None:
    img = tmp_path / "x.img"
    with open(img, "wb") as f:
        f.truncate(size_mib << 20)
    E.run(["mke2fs", "-q", "-F", *args, "-E", "root_owner=0:0", str(img)])
    src = tmp_path / "src"
    src.mkdir()
    E.debugfs(img, E.debugfs_tree(src))
    with mounted(img) as k:
        k.mkdir("/mnt/p")
        E.populate(k, "/mnt/p", big_dir=300, far_sparse=False)
        k.unlink("/mnt/dir/multi")
        k.rename("/mnt/dir/sub", "/mnt/p/sub")
        ours = E.walk_kernel(k, "/mnt")
    E.e2fsck(img)
    with mounted(img, read_only=True) as k:
        E.assert_same_tree(E.walk_kernel(k, "/mnt"), ours)
    if linux:
        with E.loop_mount(img) as mnt:
            E.assert_same_tree(ours, E.walk_host(mnt))


def test_times_clamp_as_linux(tmp_path: Path) -> None:
    """Times past what an inode holds are clamped (2446 with extra fields, 2038
    without), as Linux's s_time_max; ns precision only in 256-byte inodes."""
    for opt, top, ns_kept in (("ext4-4k-256", (1 << 34) - (1 << 31) - 1, True),
                              ("ext2-1k-128", (1 << 31) - 1, False)):
        img = make_image(tmp_path, opt, tree=False)
        with mounted(img) as k:
            with k.open_file("/mnt/f", "wb"):
                pass
            k.utime("/mnt/f", ns=(2**40 * 10**9, -(2**40) * 10**9))
            st = k.stat("/mnt/f")
            assert (st.st_atime_ns, st.st_mtime_ns) == (top * 10**9, -(2**31) * 10**9)
            k.utime("/mnt/f", ns=(1_500_000_000_123_456_789, 5))
            assert k.stat("/mnt/f").st_atime_ns == (
                1_500_000_000_123_456_789 if ns_kept else 1_500_000_000 * 10**9)
        E.e2fsck(img)
        with E.loop_mount(img) as mnt:
            assert os.stat(mnt / "f").st_atime_ns == (
                1_500_000_000_123_456_789 if ns_kept else 1_500_000_000 * 10**9)


def test_superblock_state_across_remounts(tmp_path: Path) -> None:
    """Not clean while changes may be pending, clean after unmount or a remount
    to read-only; an image that was not clean stays so."""
    img = make_image(tmp_path, "ext4-4k-256", tree=False)

    def state() -> str:
        out = E.run(["dumpe2fs", "-h", str(img)]).stdout
        return out.split("Filesystem state:")[1].split("\n")[0].strip()

    with mounted(img) as k:
        k.mkdir("/mnt/a")
        k.sync()
        assert state() == "not clean"
        k.remount("/mnt", read_only=True)
        k.sync()            # the VFS syncs before it flips read_only: settle on the next one
        assert state() == "clean"
        E.e2fsck(img)
        k.remount("/mnt", read_only=False)
        k.mkdir("/mnt/b")
        k.sync()
        assert state() == "not clean"
    assert state() == "clean"
    E.e2fsck(img)
    E.run(["debugfs", "-w", "-R", "ssv state 0", str(img)])
    with mounted(img) as k:
        k.mkdir("/mnt/c")
    assert state() == "not clean"


def test_random_writes_keep_the_extent_tree_valid(tmp_path: Path) -> None:
    """Random 1 KiB writes into a sparse file: leaves split, neighbours merge,
    the index grows a level; the tree is rewritten leaf by leaf, also after a
    remount (the shape read back from disk). Linux reads the same bytes."""
    import random
    img = tmp_path / "rnd.img"
    E.mkfs(img, E.OptionSet("ext4-1k", "ext4", 1024, 256), 48 << 20)
    order = list(range(0, 24000, 1))
    random.Random(5).shuffle(order)
    written: dict[int, bytes] = {}
    for part in (order[:9000], order[9000:12000]):
        with mounted(img) as k:
            fd = k.open("/mnt/r", os.O_CREAT | os.O_RDWR, 0o644)
            for b in part:
                chunk = (b"%08d" % b) * 128
                k.pwrite(fd, chunk, b * 1024)
                written[b] = chunk
            k.close(fd)
        E.e2fsck(img)
    with E.loop_mount(img) as mnt, open(mnt / "r", "rb") as f:
        data = f.read()
    for b, chunk in written.items():
        assert data[b * 1024:(b + 1) * 1024] == chunk
    with mounted(img) as k:
        k.truncate("/mnt/r", 5000 * 1024)
    E.e2fsck(img)


@pytest.mark.parametrize("opt", ["ext4-4k-256", "ext2-1k-128"])
def test_orphans_survive_a_crash(tmp_path: Path, opt: str) -> None:
    """Files unlinked while open go on the orphan list; a crash with them open
    leaves the list, and the next read-write mount frees them."""
    from rumpfs import EtfsType, Kernel
    img = make_image(tmp_path, opt, tree=False)
    k = Kernel()
    k.etfs_register("/dev/d", str(img), EtfsType.BLK)
    k.mkdir("/mnt")
    k.mount("ext2", "/mnt", device="/dev/d")
    fds = []
    for name in ("a", "b", "c"):
        fd = k.open(f"/mnt/{name}", os.O_CREAT | os.O_RDWR, 0o644)
        k.write(fd, b"o" * 50_000)
        k.unlink(f"/mnt/{name}")
        fds.append(fd)
    k.close(fds[1])                  # freed now: the middle of the list
    k.mkdir("/mnt/gone")
    k.chdir("/mnt/gone")
    k.rmdir("/mnt/gone")             # a cwd without a name: an orphan too
    k.sync()
    crashed = tmp_path / "crashed.img"   # the device as a crash would leave it
    crashed.write_bytes(img.read_bytes())
    k.shutdown()                     # closes everything: frees the orphans
    E.e2fsck(img)
    img = crashed
    out = E.run(["dumpe2fs", "-h", str(img)]).stdout
    assert "First orphan inode:" in out
    with mounted(img) as k2:
        assert k2.listdir("/mnt") == ["lost+found"]
    E.e2fsck(img)
    assert "First orphan inode:" not in E.run(["dumpe2fs", "-h", str(img)]).stdout


def test_dir_nlink(tmp_path: Path) -> None:
    """Past 65000 links a directory counts 1 with dir_nlink (ext4); without it
    (ext2) mkdir is EMLINK. The count is faked with debugfs, then put back."""
    for opt, dir_nlink in (("ext4-4k-256", True), ("ext2-1k-128", False)):
        img = make_image(tmp_path, opt, script=["sif dir links_count 64999"])
        with mounted(img) as k:
            k.mkdir("/mnt/dir/x1")
            assert k.lstat("/mnt/dir").st_nlink == 65000
            if dir_nlink:
                k.mkdir("/mnt/dir/x2")
                assert k.lstat("/mnt/dir").st_nlink == 1
                k.rmdir("/mnt/dir/x2")
                assert k.lstat("/mnt/dir").st_nlink == 1
            else:
                with pytest.raises(OSError) as ei:
                    k.mkdir("/mnt/dir/x2")
                assert ei.value.errno == errno.EMLINK
            k.rmdir("/mnt/dir/x1")
        E.debugfs(img, ["sif dir links_count 3"])
        E.e2fsck(img)
