"""The errno helper: every failure inside rumpfs is an OSError with a Linux errno.

Allowed imports: the standard library only. Every layer may import this module.

Inner layers raise without a filename; the ``sys_*`` calls attach the caller's
own argument where ``os`` would, through :func:`with_filename`.
"""

from __future__ import annotations

import errno
import os
from typing import NoReturn

__all__ = ["errno", "oserror", "raise_errno", "with_filename"]


def oserror(code: int, filename: object = None, filename2: object = None, *,
            message: str | None = None) -> OSError:
    """Build the OSError that ``os`` would raise for ``code`` (Python picks the subclass).

    ``message`` replaces ``os.strerror(code)`` where the kernel knows more
    (an ext2 feature it refuses, say)."""
    text = os.strerror(code) if message is None else message
    if filename is None:
        return OSError(code, text)
    if filename2 is None:
        return OSError(code, text, filename)
    return OSError(code, text, filename, None, filename2)


def raise_errno(code: int, filename: object = None, filename2: object = None) -> NoReturn:
    """Raise ``OSError(code)``; the one way kernel code reports a failure."""
    raise oserror(code, filename, filename2)


def with_filename(exc: OSError, filename: object, filename2: object = None) -> OSError:
    """Return ``exc`` re-made with ``filename`` (and ``filename2``) unless it has one."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return oserror(exc.errno, filename, filename2, message=exc.strerror)
