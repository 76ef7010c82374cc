"""The contract statfs tests on memfd-held files (see conftest.py)."""

from tests.contract.test_statfs import *  # noqa: F403
