"""VFS machinery: vnodes, namei, mounts, open files and the system calls.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors`` (never ``rumpfs.rumpuser``).
"""
