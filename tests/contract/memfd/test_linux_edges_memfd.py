"""The contract linux_edges tests on memfd-held files (see conftest.py)."""

from tests.contract.test_linux_edges import *  # noqa: F403
