"""The FUSE frontend's per-task group cache: read once, read again when the
task's uid/gid differ or the task is gone (its id may be reused)."""

from __future__ import annotations

import os
import subprocess

import pytest

from rumpfs.frontends.fuse import GroupCache, read_groups

ROOT = os.geteuid() == 0


@pytest.mark.skipif(not ROOT, reason="needs root to start a child with other groups")
def test_cached_while_the_task_lives_and_read_again_after() -> None:
    child = subprocess.Popen(["/bin/cat"],
                             stdin=subprocess.PIPE, user=1000, group=1000,
                             extra_groups=[2000, 3000])
    cache = GroupCache()
    try:
        assert cache.get(child.pid, 1000, 1000) == (2000, 3000)
        assert child.pid in cache._cache
        # a hit: the same answer without reading /proc (the entry is unchanged)
        entry = cache._cache[child.pid]
        assert cache.get(child.pid, 1000, 1000) == (2000, 3000)
        assert cache._cache[child.pid] is entry
        # other ids for the same task: read again
        cache.get(child.pid, 1000, 1001)
        assert cache._cache[child.pid] is not entry
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
        # the task is gone: never answered from the cache again
        assert cache.get(child.pid, 1000, 1001) == ()
        assert read_groups(child.pid) == ()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        cache.close()


@pytest.mark.skipif(not ROOT, reason="needs root to start children with other credentials")
def test_a_task_that_may_call_setgroups_is_never_cached() -> None:
    """CAP_SETGID in the permitted set: the groups may change with the ids kept."""
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is not installed (scripts/bootstrap installs it)")
    plain = subprocess.Popen(["/bin/cat"], stdin=subprocess.PIPE, user=1000, group=1000,
                             extra_groups=[2000])
    capable = subprocess.Popen([setpriv, "--reuid", "1000", "--regid", "1000",
                                "--groups", "2000", "--inh-caps", "+setgid",
                                "--ambient-caps", "+setgid", "/bin/cat"],
                               stdin=subprocess.PIPE)
    cache = GroupCache()
    try:
        for child in (plain, capable):
            deadline = 100
            while read_groups(child.pid) != (2000,) and deadline:   # setpriv has exec'd
                deadline -= 1
                subprocess.run(["sleep", "0.05"], check=True)
            assert cache.get(child.pid, 1000, 1000) == (2000,)
        assert plain.pid in cache._cache
        assert capable.pid not in cache._cache
    finally:
        for child in (plain, capable):
            assert child.stdin is not None
            child.stdin.close()
            child.wait()
        cache.close()
