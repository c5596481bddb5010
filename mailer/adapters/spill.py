"""A checked campaign's messages kept in a temporary file instead of in memory.

Every entry of a campaign is rendered and checked before anything is sent, and each keeps
what sending needs (its facts and its message's bytes, about 3 KB). Past the first entries
(:data:`IN_MEMORY`), the entries go into an anonymous temporary file (a :class:`SpillList`)
and each is read back when it is sent or shown: what each further entry keeps in memory is
where it is, 12 bytes. The bytes read back are the very bytes checked: nothing is rendered
twice.

The file has no name on POSIX (unlinked at once; only this process can read it) and is
deleted when closed on Windows; it is gone when the process ends.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar, overload

from mailer.errors import MailerError

# Entries kept in memory before the rest go to the file: a campaign of this size or smaller
# (most are) never writes one.
IN_MEMORY = 1000
T = TypeVar("T")


class Spill:
    """Objects appended to one temporary file; :meth:`put` gives a :class:`Spilled` that
    reads its object back."""

    def __init__(self) -> None:
        self._file: Any = None
        self._end = 0
        self._unflushed = False  # written since the last flush: flushed before a read
        self._moved = False  # the file's position moved by a read (Windows): seek to the end
        self._lock = threading.Lock()

    def put(self, value: Any) -> Spilled:
        return Spilled(self, *self.write(value))

    def write(self, value: Any) -> tuple[int, int]:
        """Where ``value`` was put: its offset and size in the file. (Buffered: see flush.)"""
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            # (try/except, not the _trouble() context: this runs once or twice an entry)
            try:
                if self._file is None:
                    # Kept open for the campaign's life: closed by close() or at exit.
                    self._file = tempfile.TemporaryFile(prefix="mailer-campaign-")  # noqa: SIM115
                if self._moved:  # (a seek flushes the buffer: only when needed)
                    self._file.seek(self._end)
                    self._moved = False
                self._file.write(data)
                self._unflushed = True
            except OSError as exc:
                raise _cannot_keep(exc) from None
            at = self._end
            self._end += len(data)
        return at, len(data)

    def flush(self) -> None:
        """Everything written is in the file (a full disk is told here, at the latest)."""
        with self._lock, self._trouble():
            self._flush()

    def _flush(self) -> None:
        if self._unflushed and self._file is not None:
            self._file.flush()
            self._unflushed = False

    @contextlib.contextmanager
    def _trouble(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise _cannot_keep(exc) from None

    def read(self, at: int, size: int) -> Any:
        with self._lock:
            if self._file is None:
                raise MailerError("the checked campaign's temporary file was closed")
            if self._unflushed:
                with self._trouble():
                    self._flush()
            try:
                if hasattr(os, "pread"):
                    data = os.pread(self._file.fileno(), size, at)
                else:  # (Windows)
                    self._moved = True
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
                # Its contents are of no more use: a write left in its buffer that fails
                # again now (a full disk) must not hide the error that said so.
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None


def _cannot_keep(exc: OSError) -> MailerError:
    return MailerError(
        f"{tempfile.gettempdir()}: cannot keep the checked campaign in a temporary file: "
        f"{exc.strerror or exc}",
        hint="free some disk space there, or point TMPDIR elsewhere",
    )


class Spilled:
    """One object in a :class:`Spill`."""

    __slots__ = ("_at", "_size", "_spill")

    def __init__(self, spill: Spill, at: int, size: int) -> None:
        self._spill, self._at, self._size = spill, at, size

    def get(self) -> Any:
        return self._spill.read(self._at, self._size)

    @property
    def place(self) -> tuple[int, int]:
        """Its offset and size in the file."""
        return self._at, self._size


class SpillList(Sequence[T], Generic[T]):
    """A list whose items past the first :data:`IN_MEMORY` are kept in a :class:`Spill`:
    each costs 12 bytes in memory (where it is), and is read back, as a new object, when it
    is asked for. ``pack`` turns an item into what is pickled (objects many items share are
    best replaced by a small index there), ``unpack`` makes the item again."""

    def __init__(
        self,
        spill: Spill,
        pack: Callable[[T], Any] = lambda item: item,
        unpack: Callable[[Any], T] = lambda packed: packed,
        in_memory: int | None = None,
    ) -> None:
        self._spill, self._pack, self._unpack = spill, pack, unpack
        self._in_memory = IN_MEMORY if in_memory is None else in_memory
        self._head: list[T] = []
        self._at = array("Q")
        self._size = array("I")

    def append(self, item: T) -> None:
        if len(self._head) < self._in_memory:
            self._head.append(item)
            return
        at, size = self._spill.write(self._pack(item))
        self._at.append(at)
        self._size.append(size)

    def __len__(self) -> int:
        return len(self._head) + len(self._at)

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[T]: ...
    def __getitem__(self, i: int | slice) -> T | Sequence[T]:
        if isinstance(i, slice):
            return Selection(self, range(len(self))[i])
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("list index out of range")
        if i < len(self._head):
            return self._head[i]
        j = i - len(self._head)
        return self._unpack(self._spill.read(self._at[j], self._size[j]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, list | SpillList | Selection):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # (a list's is none either)

    def __iter__(self) -> Iterator[T]:
        yield from self._head
        for at, size in zip(self._at, self._size, strict=True):
            yield self._unpack(self._spill.read(at, size))


class Selection(Sequence[T], Generic[T]):
    """Some items of a sequence, by their index, each read from it when asked for (a list of
    the items themselves would hold every spilled one in memory again)."""

    def __init__(self, items: Sequence[T], indexes: Iterable[int]) -> None:
        self._items = items
        self._indexes = indexes if isinstance(indexes, range) else array("L", indexes)

    def __len__(self) -> int:
        return len(self._indexes)

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[T]: ...
    def __getitem__(self, i: int | slice) -> T | Sequence[T]:
        if isinstance(i, slice):
            return Selection(self._items, self._indexes[i])
        return self._items[self._indexes[i]]

    def __iter__(self) -> Iterator[T]:
        for i in self._indexes:
            yield self._items[i]
