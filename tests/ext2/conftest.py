"""Fixtures for the ext2 oracle tests (images, tools); see ``tests/support/ext2img.py``."""

from __future__ import annotations

import pytest

from tests.support.ext2img import has_tool


@pytest.fixture(autouse=True)
def _need_e2fsprogs() -> None:
    # scripts/bootstrap installs e2fsprogs; a machine without it is misconfigured.
    for tool in ("mke2fs", "debugfs", "e2fsck", "dumpe2fs"):
        if not has_tool(tool):
            pytest.fail(f"{tool} missing: run scripts/bootstrap (installs e2fsprogs)")
