"""Device drivers (rumpblk, mem).

Allowed imports: ``rumpfs.kern``, ``rumpfs.rumpuser``, ``rumpfs.errors``.
"""
