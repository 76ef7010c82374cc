"""The contract suite of the os extras (mkfifo, dup2, removedirs, renames,
copy_file_range, sendfile) again, through a FUSE mount (see conftest.py).

O_TMPFILE is left out: the frontend does not serve FUSE's TMPFILE request
yet, so the host answers EOPNOTSUPP (docs/vfs.md lists it as missing)."""

from tests.contract.test_os_extras import *  # noqa: F403
from tests.contract.test_os_extras import test_o_tmpfile

del test_o_tmpfile
