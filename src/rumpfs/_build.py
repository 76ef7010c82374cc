"""Which variant of rumpfs is loaded: pure Python, or with its hot modules compiled.

Allowed imports: the standard library only (``setup.py`` runs this file
before rumpfs is importable, to learn what to compile).

rumpfs is a pure-Python package. ``RUMPFS_COMPILE=1`` at build time
(``setup.py``; ``scripts/compile`` builds in place) compiles the modules of
:data:`COMPILED_MODULES` with mypyc into extension modules that sit next to
their ``.py`` files and take precedence over them on import; everything else
stays interpreted and nothing imports differently. ``rumpfs.compiled`` says
which variant was loaded.

A build in a source tree leaves ``.compiled-sources`` beside this file: the
SHA-256 of every compiled module's source at build time. If a source changed
since, its extension module is stale (it would run the old code): importing
rumpfs then fails with a message saying how to rebuild or remove the build.
A wheel carries no such file and is not checked.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import sys
from pathlib import Path

__all__ = ["COMPILED_MODULES", "STAMP", "check_variant", "source_digests"]

# The hot paths of the in-process data path (bench/README.md, issue 12 item 7).
# A module here must stay mypyc-compatible: a class that other, interpreted
# modules subclass is marked ``@mypyc_attr(allow_interpreted_subclasses=True)``,
# and nothing monkeypatches their functions.
COMPILED_MODULES = (
    "rumpfs.kern.proc",
    "rumpfs.vfs.vnode",
    "rumpfs.vfs.file",
    "rumpfs.vfs.namei",
    "rumpfs.vfs.sys_generic",
    "rumpfs.vfs.sysutil",
    "rumpfs.vfs.vfs_vnops",
    "rumpfs.vfs.vfs_syscalls",
    "rumpfs.fs.rumpfs.data",
    "rumpfs.fs.rumpfs.node",
    "rumpfs.fs.rumpfs.vnops",
    "rumpfs.hotcalls",
)

STAMP = Path(__file__).resolve().parent / ".compiled-sources"
_SRC = Path(__file__).resolve().parent.parent


def source_digests(src: Path = _SRC) -> dict[str, str]:
    """module -> SHA-256 of its source file under ``src``."""
    out = {}
    for module in COMPILED_MODULES:
        path = src.joinpath(*module.split(".")).with_suffix(".py")
        out[module] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _is_extension(module: str) -> bool:
    mod = sys.modules.get(module)
    name = getattr(mod, "__file__", None) or ""
    return name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def check_variant() -> bool:
    """True if the compiled variant is loaded (all of it), False if the pure one.
    ImportError for a partial or stale build. Call after the modules are imported."""
    loaded = [m for m in COMPILED_MODULES if _is_extension(m)]
    if not loaded:
        return False
    fix = "rebuild it with scripts/compile, or remove it with scripts/compile --clean"
    if len(loaded) != len(COMPILED_MODULES):
        missing = sorted(set(COMPILED_MODULES) - set(loaded))
        raise ImportError(f"rumpfs: partial compiled build (not compiled: {missing}); {fix}")
    if STAMP.exists():
        recorded = dict(line.split() for line in STAMP.read_text().splitlines() if line)
        changed = sorted(m for m, digest in source_digests().items()
                         if recorded.get(m) != digest)
        if changed:
            raise ImportError(f"rumpfs: the compiled build is older than the source of "
                              f"{', '.join(changed)}; {fix}")
    return True
