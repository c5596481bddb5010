"""A checked campaign's messages kept in a temporary file instead of in memory.

Every entry of a campaign is rendered and checked before anything is sent, and each keeps
what sending needs (its facts and its message's bytes, about 3 KB). Past the first entries
(:data:`IN_MEMORY`), that goes into an anonymous temporary file and is read back when the
entry is sent or shown, so what each further entry keeps in memory is small (its key, place
and findings: about 0.7 KB instead of 3 KB). The bytes read back are the very bytes checked:
nothing is rendered twice.

The file has no name on POSIX (unlinked at once; only this process can read it) and is
deleted when closed on Windows; it is gone when the process ends.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import threading
from typing import Any

from mailer.errors import MailerError

# Entries kept in memory before the rest go to the file: a campaign of this size or smaller
# (most are) never writes one.
IN_MEMORY = 1000


class Spill:
    """Objects appended to one temporary file; :meth:`put` gives a :class:`Spilled` that
    reads its object back."""

    def __init__(self) -> None:
        self._file: Any = None
        self._end = 0
        self._lock = threading.Lock()

    def put(self, value: Any) -> Spilled:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            try:
                if self._file is None:
                    # Kept open for the campaign's life: closed by close() or at exit.
                    self._file = tempfile.TemporaryFile(prefix="mailer-campaign-")  # noqa: SIM115
                self._file.seek(self._end)
                self._file.write(data)
                self._file.flush()
            except OSError as exc:
                where = tempfile.gettempdir()
                raise MailerError(
                    f"{where}: cannot keep the checked campaign in a temporary file: "
                    f"{exc.strerror or exc}",
                    hint="free some disk space there, or point TMPDIR elsewhere",
                ) from None
            at = self._end
            self._end += len(data)
        return Spilled(self, at, len(data))

    def read(self, at: int, size: int) -> Any:
        with self._lock:
            if self._file is None:
                raise MailerError("the checked campaign's temporary file was closed")
            try:
                if hasattr(os, "pread"):
                    data = os.pread(self._file.fileno(), size, at)
                else:  # (Windows)
                    self._file.seek(at)
                    data = self._file.read(size)
                if len(data) != size:
                    raise OSError(f"read {len(data)} bytes of {size}")
                return pickle.loads(data)
            except (OSError, pickle.UnpicklingError) as exc:
                raise MailerError(
                    f"{tempfile.gettempdir()}: cannot read back the checked campaign from "
                    f"its temporary file: {getattr(exc, 'strerror', None) or exc}",
                    hint="run the campaign again: what was sent is recorded",
                ) from None

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class Spilled:
    """One object in a :class:`Spill`."""

    __slots__ = ("_at", "_size", "_spill")

    def __init__(self, spill: Spill, at: int, size: int) -> None:
        self._spill, self._at, self._size = spill, at, size

    def get(self) -> Any:
        return self._spill.read(self._at, self._size)
