"""The base kernel, knowing no files: credentials, processes, clock, locks, devices.

Allowed imports: ``rumpfs.rumpuser``, ``rumpfs.errors``.
"""
