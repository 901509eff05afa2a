"""Signal receivers that record what the workers of the reliability tests did.

A worker process started with ``CELERY_IMPORTS=tests.support.load_receivers`` and
``SMSCLUB_SIGNAL_LOG=<directory>`` imports this module, which connects the receivers: every
claim (``queued`` -> ``sending``) and every ``message_finished`` becomes one line in a file of
that directory, one file per process and thread. Each line is one ``write`` to a file opened
with ``O_APPEND``, so a worker killed with SIGKILL keeps every line it wrote. The test process
connects the same receivers for workers that run in its own threads.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django_smsclub.signals import message_finished, message_status_changed
from django_smsclub.status import Status

ENV = "SMSCLUB_SIGNAL_LOG"
_UID = "tests.support.load_receivers"


@dataclass(frozen=True)
class Entry:
    """One recorded signal: which process and thread, what, for which message, when."""

    writer: str
    event: str
    message_id: int
    status: str
    time: float


class SignalLog:
    """Appends claims and finished messages to ``directory``, one file per process and thread."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self._files: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()

    def connect(self) -> None:
        message_status_changed.connect(self._changed, weak=False, dispatch_uid=f"{_UID}.changed")
        message_finished.connect(self._finished, weak=False, dispatch_uid=f"{_UID}.finished")

    def disconnect(self) -> None:
        message_status_changed.disconnect(dispatch_uid=f"{_UID}.changed")
        message_finished.disconnect(dispatch_uid=f"{_UID}.finished")
        with self._lock:
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()

    def entries(self) -> list[Entry]:
        """Every line every writer wrote, in no particular order across writers."""
        found: list[Entry] = []
        for path in sorted(self.directory.glob("*.log")):
            for line in path.read_text().splitlines():
                event, message_id, status, moment = line.split()
                found.append(Entry(path.stem, event, int(message_id), status, float(moment)))
        return found

    def _changed(self, message: Any, old_status: str, new_status: str, **kwargs: Any) -> None:
        if old_status == Status.QUEUED and new_status == Status.SENDING:
            self._write("claimed", message.pk, new_status)

    def _finished(self, message: Any, new_status: str, **kwargs: Any) -> None:
        self._write("finished", message.pk, new_status)

    def _write(self, event: str, message_id: int, status: str) -> None:
        # A forked pool process inherits the parent's table: the key holds the pid.
        key = (os.getpid(), threading.get_ident())
        with self._lock:
            fd = self._files.get(key)
            if fd is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                path = self.directory / f"{key[0]}-{key[1]}.log"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                self._files[key] = fd
        os.write(fd, f"{event} {message_id} {status} {time.time():.6f}\n".encode())


if os.environ.get(ENV):
    SignalLog(os.environ[ENV]).connect()
