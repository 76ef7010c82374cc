"""The memfd fixture itself."""

from __future__ import annotations

from tests.contract.conftest import Env


def test_files_do_move(env: Env) -> None:
    """The fixture does what it says: an opened file's data is a memfd."""
    from rumpfs.fs.rumpfs.memfd_data import MemfdData

    k = env.fs
    fd = k.open("/f", 0o101, 0o644)     # O_WRONLY | O_CREAT
    k.write(fd, b"x")
    k.close(fd)
    assert isinstance(k.vfs.rootvnode.entries["f"].data, MemfdData)
