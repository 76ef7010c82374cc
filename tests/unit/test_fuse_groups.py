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
