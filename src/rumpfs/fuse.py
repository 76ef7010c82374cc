"""Serve a kernel to the host through FUSE: ``with rumpfs.fuse.serve(k, mountpoint):``.

The implementation lives in :mod:`rumpfs.frontends.fuse`; this module is the
public name (docs/api.md). Needs only the standard library and ``/dev/fuse``.
"""

from rumpfs.frontends.fuse import FuseServer, serve

__all__ = ["FuseServer", "serve"]
