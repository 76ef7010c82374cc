"""The two variants of the package (src/rumpfs/_build.py): the pure-Python one
and the one whose hot modules mypyc compiled. ``scripts/test`` runs the whole
suite once on each and says which through ``RUMPFS_VARIANT``; here the loaded
variant must be that one, all of it."""

from __future__ import annotations

import importlib.machinery
import os
import sys

import pytest

import rumpfs
from rumpfs import _build


def _extension(module: str) -> bool:
    return sys.modules[module].__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def test_the_flag_says_what_is_loaded_and_it_is_all_of_one_variant() -> None:
    assert [_extension(m) for m in _build.COMPILED_MODULES] == \
        [rumpfs.compiled] * len(_build.COMPILED_MODULES)
    assert rumpfs.compiled is _build.check_variant()


def test_it_is_the_variant_scripts_test_asked_for() -> None:
    want = os.environ.get("RUMPFS_VARIANT", "compiled" if rumpfs.compiled else "pure")
    assert want in ("pure", "compiled")
    assert rumpfs.compiled is (want == "compiled")


def test_a_stale_build_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    if not rumpfs.compiled:
        assert _build.check_variant() is False      # nothing compiled: nothing to check
        return
    stamp = tmp_path / "stamp"
    digests = _build.source_digests()
    stamp.write_text("".join(f"{m} {d}\n" for m, d in digests.items()))
    monkeypatch.setattr(_build, "STAMP", stamp)
    assert _build.check_variant() is True
    first = _build.COMPILED_MODULES[0]
    stamp.write_text("".join(f"{m} {'0' * 64 if m == first else d}\n"
                             for m, d in digests.items()))
    with pytest.raises(ImportError, match=f"older than the source of {first}"):
        _build.check_variant()
