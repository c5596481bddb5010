"""What was read of a file, told apart from what the file holds now.

A campaign file (and its CSV) is read a piece at a time while each entry is checked, not held
whole, which takes seconds for a large one. Saved in the meantime, it would be checked half
as it was and half as it is: a campaign neither version asks for. So each read keeps a digest
of the bytes it took, and the reader compares it with the file's at the end (or with another
read's): any difference means the file changed, and what was read is not used.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import IO, Any


class _Hashing(io.RawIOBase):
    """A binary file whose every byte read goes into a digest."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.blake2b(digest_size=32)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.digest.update(memoryview(buffer)[:n])
        return n or 0

    def close(self) -> None:
        self.raw.close()
        super().close()


class Snapshot:
    """``path`` opened for reading (as text, with ``open``'s ``encoding`` and ``newline``, or
    as bytes), keeping a digest of every byte read. Use it as a context manager."""

    def __init__(self, path: Path, encoding: str | None = None, newline: str | None = None):
        self.path = path
        self._hashing = _Hashing(path.open("rb"))
        buffered = io.BufferedReader(self._hashing)
        self.file: IO[Any] = (
            buffered
            if encoding is None
            else io.TextIOWrapper(buffered, encoding=encoding, newline=newline)
        )

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    def digest(self) -> bytes:
        """The digest of the bytes read so far (all of them, once the file is read to its
        end)."""
        return self._hashing.digest.digest()

    def unchanged(self) -> bool:
        """Whether the file holds now exactly the bytes read (call it once all are read)."""
        return self.digest() == file_digest(self.path)


def file_digest(path: Path) -> bytes:
    """The digest :class:`Snapshot` keeps, of the whole file as it is now."""
    digest = hashlib.blake2b(digest_size=32)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.digest()
