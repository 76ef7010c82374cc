"""The contract fallocate suite again, through a FUSE mount (see conftest.py)."""

from tests.contract.test_fallocate import *  # noqa: F403
