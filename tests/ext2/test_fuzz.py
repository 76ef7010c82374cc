"""Corrupt images: random byte and bit changes in the metadata of real images.

Each case damages a few metadata bytes (superblocks, descriptors, bitmaps,
inode tables, directory, extent-tree and indirect blocks, slow symlinks) of
an image made by mkfs, debugfs and Linux, puts it in a window of a larger
host file, and in a forked child (time and address-space limits) mounts it,
walks and reads everything, makes a few writes and unmounts. Only OSError may
come out of any call; the child must finish; the bytes outside the window
must be unchanged. Seeds are fixed (derandomized); ``RUMPFS_FUZZ_CASES`` and
``RUMPFS_FUZZ_SEED`` run more or other cases.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from tests.support.ext2fuzz import (
    Metadata,
    exercise,
    metadata_blocks,
    mutate,
    place_in_window,
    run_case,
)
from tests.support.ext2img import (
    OPTION_SETS_BY_NAME,
    debugfs,
    debugfs_tree,
    e2fsck,
    kernel_mount,
    loop_mount,
    mkfs,
    populate,
)

CASES = int(os.environ.get("RUMPFS_FUZZ_CASES", "25"))
SEED = int(os.environ.get("RUMPFS_FUZZ_SEED", "20261206"))
IMAGES = ["ext2-1k-128", "ext4-4k-256", "ext4-4k-256-noextent"]


@pytest.fixture(scope="module", params=IMAGES)
def base_image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[str, bytes, Metadata]:
    opts = OPTION_SETS_BY_NAME[request.param]
    d = tmp_path_factory.mktemp(f"fuzz-{opts.name}")
    img = mkfs(d / "base.img", opts, 8 << 20)
    debugfs(img, debugfs_tree(d))
    with loop_mount(img, read_only=False) as mnt:
        (mnt / "t").mkdir()
        populate(os, str(mnt / "t"), big_dir=300, far_sparse=False)
    e2fsck(img)
    return opts.name, img.read_bytes(), metadata_blocks(img)


@pytest.mark.parametrize("case", range(CASES))
def test_corrupt_image(tmp_path: Path, base_image: tuple[str, bytes, Metadata], case: int) -> None:
    name, data, md = base_image
    rng = random.Random(f"{SEED}:{name}:{case}")
    image = bytearray(data)
    changes = mutate(image, md, rng, rng.choice((1, 1, 2, 4, 8)))
    host = tmp_path / "disk.img"
    begin, size = place_in_window(bytes(image), host)
    raw = host.read_bytes()
    guards = hashlib.sha256(raw[:begin] + raw[begin + size:]).hexdigest()

    def child() -> list[str]:
        try:
            with kernel_mount(host, begin=begin, size=size) as k:
                return exercise(k, "/mnt")
        except OSError as e:  # the mount itself may refuse the image
            return [f"mount: {e}"]

    kind, detail = run_case(child, timeout=60)
    where = f"seed {SEED}, image {name}, case {case}: " + "; ".join(changes)
    if kind == "hang":
        pytest.fail(f"hung (60 s): {where}")
    if kind != "ok":
        pytest.fail(f"{kind}: {where}\n{detail}")
    raw = host.read_bytes()
    assert hashlib.sha256(raw[:begin] + raw[begin + size:]).hexdigest() == guards, (
        f"wrote outside its window: {where}")
