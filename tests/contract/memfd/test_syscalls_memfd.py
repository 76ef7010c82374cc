"""The contract syscalls tests on memfd-held files (see conftest.py)."""

from tests.contract.test_syscalls import *  # noqa: F403
