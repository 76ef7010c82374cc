"""The contract fallocate tests on memfd-held files (see conftest.py)."""

from tests.contract.test_fallocate import *  # noqa: F403
