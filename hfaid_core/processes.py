"""Process identity and lifetime: who owns a run (pid, start time, host), whether it still lives,
and worker processes that die with their parent."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import psutil

# Start times are read back from /proc in clock ticks (1/100 s): equal within this.
_START_TOLERANCE_S = 0.05
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class ProcessId:
    """A process as it can be told apart from a later one that reuses its pid."""

    pid: int
    started: float  # seconds since the epoch
    host: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ProcessId:
        return ProcessId(int(data["pid"]), float(data["started"]), str(data["host"]))


def this_process() -> ProcessId:
    return ProcessId(os.getpid(), psutil.Process().create_time(), socket.gethostname())


def is_alive(process: ProcessId) -> bool:
    """False once the process is gone (or its pid belongs to a later process); a process on
    another host cannot be checked from here and counts as alive."""
    if process.host != socket.gethostname():
        return True
    try:
        started = psutil.Process(process.pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # another user's process with that pid: it exists
        return True
    return abs(started - process.started) < _START_TOLERANCE_S


def die_with_parent(parent: int) -> None:
    """Called first in a worker process: it is killed when `parent` (the pid that started
    it) dies, even by kill -9, instead of living on as an orphan holding its memory. Linux
    asks the kernel (PR_SET_PDEATHSIG); elsewhere a thread watches the parent pid."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # the parent died before the request took effect
                os._exit(1)
            return
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="hfaid-parent-watch").start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
