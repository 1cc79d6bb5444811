"""Clean shutdowns: SIGTERM and SIGHUP stop a command the way Ctrl-C does, and take its worker
processes and child servers with it (what systemd, Docker and CI runners send on stop)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import threading
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
GRACE_S = 8.0  # a child gets this long to stop on its own before it is killed


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C (runs closed as interrupted, finished
    shards kept), so every `finally` and every pool shutdown runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_received: list[int] = []


def install_signal_handlers() -> None:
    """Turn SIGTERM/SIGHUP into `Terminated` in the main thread (only the first one raises)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_stop_signal)


def received_signal() -> int | None:
    """The stop signal this process got, if any (for the exit code 128 + N)."""
    return _received[0] if _received else None


def _on_stop_signal(signum: int, frame) -> None:
    if _received:
        return  # already stopping; a second signal must not interrupt the cleanup
    _received.append(signum)
    # Worker pools (score --workers, export --pairs) would finish their running shards first;
    # they die now instead, and a re-run redoes only those shards. Daemonic children (DataLoader
    # decode workers) are shut down by their owner while the stack unwinds.
    for child in multiprocessing.active_children():
        if not child.daemon:
            child.terminate()
    raise Terminated(signum)


def stop_signal_of(exc: KeyboardInterrupt) -> int:
    return exc.signum if isinstance(exc, Terminated) else signal.SIGINT


def wait_child(proc: subprocess.Popen, own_group: bool = False, reraise: bool = True) -> int:
    """Wait for a child process. On Ctrl-C, SIGTERM or SIGHUP, pass that signal on (to the
    child's whole process group when it has its own), wait up to GRACE_S, then kill it, and
    re-raise the interrupt unless `reraise` is False (then the child's exit code is returned)."""
    try:
        return proc.wait()
    except KeyboardInterrupt as exc:
        code = stop_child(proc, stop_signal_of(exc), own_group)
        if reraise:
            raise
        return code


def stop_child(proc: subprocess.Popen, sig: int, own_group: bool) -> int:
    """Signal the child (or its group), wait GRACE_S for it and its group, then SIGKILL them."""
    group = proc.pid if own_group else None
    _send(proc, group, sig)
    deadline = time.monotonic() + GRACE_S
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        stopped = group is None or not _wait_group(group, deadline)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):  # too slow, or asked again
        stopped = False
    if not stopped:
        _send(proc, group, signal.SIGKILL)
        proc.wait()
    return proc.returncode


def _send(proc: subprocess.Popen, group: int | None, sig: int) -> None:
    try:
        if group is not None:
            os.killpg(group, sig)
        elif proc.poll() is None:
            proc.send_signal(sig)
    except ProcessLookupError:
        pass


def _wait_group(group: int, deadline: float) -> bool:
    """True if processes of `group` are still alive at the deadline (the launcher can exit
    before the processes it started)."""
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)
