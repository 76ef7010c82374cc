"""Device drivers (rumpblk).

Allowed imports: ``rumpfs.kern``, ``rumpfs.rumpuser``, ``rumpfs.errors``.
"""
