"""FuseServer.request_stop() is safe in a signal handler: it takes no lock.

A SIGTERM that came while the CLI's server was inside ``stop()`` once
deadlocked it (the handler's ``Event.set()`` waited for the lock the
interrupted ``set()`` held); the stop request is now a byte written to a pipe.
No mount is needed: the server is never started.
"""

from __future__ import annotations

import signal
import threading

from rumpfs import Kernel
from rumpfs.frontends.fuse import FuseServer


def test_request_stop_from_a_signal_handler_wakes_wait(tmp_path: object) -> None:
    with Kernel() as k:
        server = FuseServer(k.node_handles(), str(tmp_path))
        assert not server.wait(0)
        old = signal.signal(signal.SIGUSR1, lambda signum, frame: server.request_stop())
        try:
            timer = threading.Timer(0.2, signal.pthread_kill,
                                    (threading.main_thread().ident, signal.SIGUSR1))
            timer.start()
            assert server.wait(30)          # woken by the handler, not the timeout
            timer.join()
        finally:
            signal.signal(signal.SIGUSR1, old)
        assert server.wait(0)


def test_request_stop_inside_stop_and_many_times(tmp_path: object) -> None:
    """The handler may run anywhere in the main thread, also inside stop()."""
    with Kernel() as k:
        server = FuseServer(k.node_handles(), str(tmp_path))
        old = signal.signal(signal.SIGUSR1, lambda signum, frame: server.request_stop())
        try:
            inner = server.ops.release_all

            def release_all() -> None:   # the last step of stop()
                signal.raise_signal(signal.SIGUSR1)
                inner()

            server.ops.release_all = release_all  # type: ignore[method-assign]
            server.stop()
        finally:
            signal.signal(signal.SIGUSR1, old)
        for _ in range(100_000):        # more than a pipe holds: never blocks
            server.request_stop()
        assert server.wait(0)
