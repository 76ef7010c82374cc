"""Fixtures for etfs tests: a kernel over the real host with a scratch
directory of host files, and a kernel over a MemHost."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rumpfs import Kernel
from rumpfs.rumpuser.memhost import MemHost


@pytest.fixture
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch host directory (tmpfs when available)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    d = Path(tempfile.mkdtemp(prefix="rumpfs-etfs-", dir=base))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def k() -> Iterator[Kernel]:
    kernel = Kernel()
    try:
        yield kernel
    finally:
        kernel.shutdown()


@pytest.fixture
def mem() -> MemHost:
    return MemHost()


@pytest.fixture
def mk(mem: MemHost) -> Iterator[Kernel]:
    kernel = Kernel(hypervisor=mem)
    try:
        yield kernel
    finally:
        kernel.shutdown()
