"""Frontends: the ways a rumpfs kernel is offered to the world.

``fuse`` serves a kernel to the host through FUSE (as NetBSD's p2k serves a
kernel through puffs), ``cli`` is the ``rumpfs`` command. Frontends use the
public :class:`rumpfs.Kernel` API or, for FUSE, the kernel's narrow
vnode-handle API; they never reach into ``vfs`` or ``fs`` directly.
"""
