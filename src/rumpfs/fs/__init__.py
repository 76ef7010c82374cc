"""File systems. Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors``."""
