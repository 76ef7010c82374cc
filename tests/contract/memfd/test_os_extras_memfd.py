"""The contract os_extras tests on memfd-held files (see conftest.py)."""

from tests.contract.test_os_extras import *  # noqa: F403
