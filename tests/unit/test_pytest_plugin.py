"""The pytest plugin (rumpfs.pytest_plugin), tested with pytester.

Each test writes a small test module into a temporary rootdir and runs pytest
on it: in-process for the kernel fixture and markers, in a subprocess where
FUSE is involved (one FUSE session per process, and a hang stays contained).
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

import pytest

from rumpfs.pytest_plugin import REQUIRE_FUSE_ENV, RumpfsMount, fuse_unavailable_reason

pytest_plugins = ["pytester"]

_SRC = str(Path(__file__).resolve().parents[2] / "src")


def _plugin_args() -> list[str]:
    # Installed, the pytest11 entry point loads the plugin; from a source
    # checkout it must be named (loading it twice would be an error).
    eps = importlib.metadata.entry_points(group="pytest11")
    if any(ep.value == "rumpfs.pytest_plugin" for ep in eps):
        return []
    return ["-p", "rumpfs.pytest_plugin"]


# Plugins the inner runs do without: hypothesis' costs seconds per session.
_QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*_plugin_args(), *_QUIET, *args)


def run_subprocess(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                   *args: str) -> pytest.RunResult:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (_SRC, os.environ.get("PYTHONPATH", "")) if p))
    return pytester.runpytest_subprocess(*_plugin_args(), *_QUIET, *args, timeout=300)


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.rumpfs_etfs(key, hostpath, type='reg'*"])
    assert result.ret == 0


def test_strict_markers_accept_rumpfs_etfs(pytester: pytest.Pytester) -> None:
    pytester.makefile(".txt", hello="hi")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.rumpfs_etfs("/hello", "hello.txt")
        def test_it(rumpfs_kernel):
            with rumpfs_kernel.open_file("/hello") as f:
                assert f.read() == "hi"
        """
    )
    run(pytester, "--strict-markers").assert_outcomes(passed=1)


def test_kernel_is_fresh_per_test_and_shut_down(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os
        from rumpfs import Kernel

        seen = []

        def test_one(rumpfs_kernel):
            assert isinstance(rumpfs_kernel, Kernel)
            seen.append(rumpfs_kernel)
            fd = rumpfs_kernel.open("/x", os.O_CREAT | os.O_WRONLY, 0o644)
            rumpfs_kernel.close(fd)

        def test_two(rumpfs_kernel):
            assert rumpfs_kernel is not seen[0]
            assert rumpfs_kernel.listdir("/") == []
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_etfs_markers_map_files_windows_and_dirs(pytester: pytest.Pytester) -> None:
    data = pytester.mkdir("data")
    (data / "a.txt").write_text("alpha")
    (data / "sub").mkdir()
    (data / "sub" / "b.txt").write_text("beta")
    (pytester.path / "disk.img").write_bytes(bytes(range(256)) * 8)  # 2048 bytes
    absolute = pytester.path / "abs.txt"
    absolute.write_text("absolute")
    pytester.makepyfile(
        test_etfs=f"""
        import stat
        import pytest
        from rumpfs import EtfsType

        pytestmark = pytest.mark.rumpfs_etfs("/abs", {str(absolute)!r})

        @pytest.mark.rumpfs_etfs("/data", "data", "dir_subdirs")
        @pytest.mark.rumpfs_etfs("/dev/disk0", "disk.img", type=EtfsType.BLK,
                                 begin=512, size=1024)
        @pytest.mark.rumpfs_etfs("/flat", "data", type="DIR")
        def test_mapped(rumpfs_kernel):
            k = rumpfs_kernel
            with k.open_file("/abs") as f:
                assert f.read() == "absolute"
            with k.open_file("/data/sub/b.txt") as f:
                assert f.read() == "beta"
            assert sorted(k.listdir("/flat")) == ["a.txt"]
            s = k.stat("/dev/disk0")
            assert stat.S_ISBLK(s.st_mode) and s.st_size == 1024
            fd = k.open("/dev/disk0", 0)
            assert k.pread(fd, 4, 0) == bytes([0, 1, 2, 3])  # host offset 512
            k.close(fd)

        def test_module_marker_only(rumpfs_kernel):
            assert sorted(rumpfs_kernel.listdir("/")) == ["abs"]
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_etfs_marker_relative_to_rootdir_not_test_dir(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    (pytester.path / "top.txt").write_text("top")
    sub = pytester.mkdir("deeper")
    (sub / "test_sub.py").write_text(
        "import pytest\n"
        "@pytest.mark.rumpfs_etfs('/top', 'top.txt')\n"
        "def test_it(rumpfs_kernel):\n"
        "    with rumpfs_kernel.open_file('/top') as f:\n"
        "        assert f.read() == 'top'\n"
    )
    run(pytester).assert_outcomes(passed=1)


def test_etfs_marker_read_only(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "x.csv").write_text("a,b\n")
    pytester.makepyfile(
        """
        import errno, os, pytest

        @pytest.mark.rumpfs_etfs("/data", "data", "dir_subdirs", read_only=True)
        def test_ro(rumpfs_kernel):
            assert rumpfs_kernel.path("/data/x.csv").read_text() == "a,b\\n"
            with pytest.raises(OSError) as ei:
                rumpfs_kernel.path("/data/x.csv").write_text("changed")
            assert ei.value.errno == errno.EROFS
            with pytest.raises(OSError) as ei:
                rumpfs_kernel.unlink("/data/x.csv")
            assert ei.value.errno == errno.EROFS
        """
    )
    run(pytester).assert_outcomes(passed=1)
    assert (pytester.path / "data" / "x.csv").read_text() == "a,b\n"


def test_etfs_marker_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.rumpfs_etfs("/x", "missing-host-file")
        def test_missing(rumpfs_kernel):
            pass

        @pytest.mark.rumpfs_etfs("/x", "test_etfs_marker_errors.py", type="floppy")
        def test_bad_type(rumpfs_kernel):
            pass

        @pytest.mark.rumpfs_etfs("/x")
        def test_too_few_args(rumpfs_kernel):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines([
        "*FileNotFoundError*",
        "*while applying @pytest.mark.rumpfs_etfs('/x', 'missing-host-file')*",
    ])
    result.stdout.fnmatch_lines(["*bad @pytest.mark.rumpfs_etfs*type must be*floppy*"])
    result.stdout.fnmatch_lines(["*bad @pytest.mark.rumpfs_etfs('/x')*hostpath*"])


def test_mount_skips_cleanly_without_fuse(pytester: pytest.Pytester,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(
        """
        def test_needs_mount(rumpfs_mount):
            raise AssertionError("must not run")
        """
    )
    empty = pytester.mkdir("empty-bin")
    monkeypatch.setenv("PATH", str(empty))  # no fusermount3 to be found
    monkeypatch.delenv(REQUIRE_FUSE_ENV, raising=False)
    result = run(pytester, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*rumpfs_mount needs FUSE: fusermount3 is not installed*"])

    monkeypatch.setenv(REQUIRE_FUSE_ENV, "1")
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*rumpfs_mount needs FUSE*{REQUIRE_FUSE_ENV}=1*"])


def test_mount_skips_when_mounting_fails(pytester: pytest.Pytester,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest(
        """
        import sys, types, contextlib

        fake = types.ModuleType("rumpfs.fuse")

        @contextlib.contextmanager
        def serve(kernel, mountpoint):
            raise RuntimeError("rumpfs.fuse: cannot mount: fuse: permission denied")
            yield

        fake.serve = serve
        sys.modules["rumpfs.fuse"] = fake
        """
    )
    pytester.makepyfile(
        """
        def test_needs_mount(rumpfs_mount):
            raise AssertionError("must not run")
        """
    )
    monkeypatch.delenv(REQUIRE_FUSE_ENV, raising=False)
    result = run(pytester, "-rs")
    result.assert_outcomes(skipped=1)
    if fuse_unavailable_reason() is None:
        result.stdout.fnmatch_lines(["*rumpfs_mount needs FUSE: mounting failed*"])
    monkeypatch.setenv(REQUIRE_FUSE_ENV, "1")
    run(pytester).assert_outcomes(errors=1)


def test_mount_hostpath() -> None:
    m = RumpfsMount(kernel=None, mountpoint="/tmp/mnt")  # type: ignore[arg-type]
    assert m.hostpath("/") == "/tmp/mnt"
    assert m.hostpath("/a/b/") == "/tmp/mnt/a/b"
    with pytest.raises(ValueError):
        m.hostpath("rel")


@pytest.fixture
def needs_fuse() -> None:
    reason = fuse_unavailable_reason()
    if reason is not None:
        if os.environ.get(REQUIRE_FUSE_ENV) == "1":
            pytest.fail(reason)
        pytest.skip(f"needs FUSE: {reason}")


@pytest.mark.usefixtures("needs_fuse")
def test_subprocess_reads_through_mount_what_test_wrote(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        f"""
        import subprocess, sys

        def test_shared(rumpfs_mount):
            k = rumpfs_mount.kernel
            k.mkdir("/shared")
            with k.open_file("/shared/msg.txt", "w") as f:
                f.write("written in-process")
            out = subprocess.run(
                [{sys.executable!r}, "-c",
                 "import sys; print(open(sys.argv[1]).read())",
                 rumpfs_mount.hostpath("/shared/msg.txt")],
                capture_output=True, text=True, check=True, timeout=60,
            ).stdout
            assert out.strip() == "written in-process"
            # And the other way: a host program writes, the kernel sees it.
            subprocess.run(["sh", "-c", "echo from-host > " + rumpfs_mount.mountpoint
                            + "/shared/back.txt"], check=True, timeout=60)
            with k.open_file("/shared/back.txt") as f:
                assert f.read() == "from-host\\n"
        """
    )
    result = run_subprocess(pytester, monkeypatch)
    result.assert_outcomes(passed=1)


def test_rumpfs_image_marker(pytester: pytest.Pytester, tmp_path: Path) -> None:
    import subprocess

    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("from the image\n")
    img = pytester.path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), str(img)], check=True,
                   capture_output=True)
    (pytester.path / "disk2.img").write_bytes(img.read_bytes())
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.rumpfs_image("disk.img")
        @pytest.mark.rumpfs_image("disk.img", at="/ro", read_only=True)
        def test_it(rumpfs_kernel):
            k = rumpfs_kernel
            assert k.open_file("/image/hello.txt").read() == "from the image\\n"
            assert sorted(k.listdir("/dev")) == ["rumpdisk0", "rumpdisk1"]
            with open("/dev/null", "w"):
                pass

        @pytest.mark.rumpfs_image("disk.img", partition=3)
        def test_bad(rumpfs_kernel):
            pass
        """
    )
    result = run(pytester, "--strict-markers")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*bad @pytest.mark.rumpfs_image('disk.img', partition=3)*"])
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.rumpfs_image(image, at='/image'*"])
