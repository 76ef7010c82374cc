"""The contract permissions tests on memfd-held files (see conftest.py)."""

from tests.contract.test_permissions import *  # noqa: F403
