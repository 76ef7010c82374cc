"""Test helpers shared by the suites (host-os reference processes, ...)."""
