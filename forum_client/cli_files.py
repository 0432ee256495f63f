"""Option types for the files the CLIs read and write, checked while the command line is
parsed (exit 2 naming the option) instead of after a connection or half the work:

- :data:`LOCAL_COPY`: a member's local copy made by ``forum-client sync`` (a SQLite file of
  the SDK's schema, never another SQLite database, which opening as a copy would alter);
- :data:`NOTE_FILE`: a signed checkpoint note, read with a size limit (``/dev/zero`` is
  refused at once) and parsed, its bytes handed to the command;
- :data:`MEDIA_FILE`: a file to hash whole (any size): a regular file, never a device or a
  pipe that would be read for ever;
- :data:`OUTPUT_DIR` / :data:`OUTPUT_FILE` / :data:`OUTPUT_FILE_OR_DIR`: where a command
  writes, whose nearest existing directory must be one (a path under a regular file, or into
  a missing directory, is a typo).

The store and the checkpoint parser are imported only when a value is checked, so
``--help`` stays fast.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "notes.txt").write_text("hello")
    >>> local_copy_problem(d / "notes.txt")
    'is not a SQLite database (a local copy is made by `forum-client sync --db FILE`)'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import click

from .files import MAX_NOTE_BYTES, FileTooLargeError, read_bounded

_SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_problem(path: Path) -> str | None:
    """Why ``path`` is not a SQLite database, or None (an empty file is one: SQLite makes a
    new database in it)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if head and head != _SQLITE_MAGIC:
        return "is not a SQLite database"
    return None


def local_copy_problem(path: Path) -> str | None:
    """Why ``path`` is not a member's local copy, or None.  Opens the file read-only: never
    changes it (opening another program's SQLite database as a copy would)."""
    import sqlite3

    hint = "(a local copy is made by `forum-client sync --db FILE`)"
    if not path.exists():
        return f"does not exist {hint}"
    problem = sqlite_problem(path)
    if problem is not None:
        return f"{problem} {hint}"
    if path.stat().st_size == 0:
        return f"is empty: no local copy yet {hint}"
    from .store.schema import probe_read_only

    try:
        foreign, empty = probe_read_only(path)
    except sqlite3.Error as exc:
        return f"cannot be read as SQLite ({exc})"
    if foreign:
        return f"is a SQLite database but not a forum local copy {hint}"
    if empty:
        return f"holds no local copy yet {hint}"
    return None


class LocalCopy(click.Path):
    """A member's existing local copy (``--db`` of the commands that only read it)."""

    def __init__(self) -> None:
        super().__init__(path_type=Path, dir_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = cast(Path, super().convert(value, param, ctx))
        problem = local_copy_problem(path)
        if problem is not None:
            self.fail(f"{str(path)!r} {problem}", param, ctx)
        return path


class NoteFile(click.Path):
    """A signed checkpoint note file; converts to its bytes (read with a size limit, and
    parsed: signatures are verified by the command, against the right key)."""

    def __init__(self) -> None:
        super().__init__(path_type=Path, dir_okay=False, exists=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, bytes):
            return value
        from .checkpoint import parse_unverified
        from .errors import VerificationError

        path = cast(Path, super().convert(value, param, ctx))
        try:
            note = read_bounded(path, MAX_NOTE_BYTES, "a signed checkpoint")
            parse_unverified(note)
        except FileTooLargeError as exc:
            self.fail(str(exc), param, ctx)
        except OSError as exc:
            self.fail(f"{str(path)!r}: {exc.strerror or exc}", param, ctx)
        except VerificationError as exc:
            self.fail(f"{str(path)!r} is not a signed checkpoint note ({exc})", param, ctx)
        return note


def _nearest_directory_problem(path: Path) -> str | None:
    """Why ``path`` cannot be created (its nearest existing ancestor is not a directory)."""
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{str(parent)!r} is not a directory"
    return None


class OutputDir(click.Path):
    """A directory to write into, made if missing (with its parents)."""

    def __init__(self) -> None:
        super().__init__(path_type=Path, file_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = cast(Path, super().convert(value, param, ctx))
        problem = None if path.is_dir() else _nearest_directory_problem(path)
        if problem is not None:
            self.fail(f"cannot make {str(path)!r}: {problem}", param, ctx)
        return path


class OutputFile(click.Path):
    """A file to write (replaced if it exists), in a directory that exists; with
    ``dir_okay``, a file or a directory (``export --format misp-feed`` writes one)."""

    def __init__(self, dir_okay: bool = False) -> None:
        super().__init__(path_type=Path, dir_okay=dir_okay, writable=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = cast(Path, super().convert(value, param, ctx))
        parent = path.absolute().parent
        if not parent.is_dir():
            what = "is not a directory" if parent.exists() else "does not exist"
            self.fail(f"the directory {str(parent)!r} {what}", param, ctx)
        return path


class MediaFile(click.Path):
    """An existing regular file (``forum-client hash`` and ``match`` read it to its end)."""

    def __init__(self) -> None:
        super().__init__(path_type=Path, dir_okay=False, exists=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = cast(Path, super().convert(value, param, ctx))
        if not path.is_file():
            self.fail(f"{str(path)!r} is not a regular file (a device or a pipe?)", param, ctx)
        return path


LOCAL_COPY = LocalCopy()
MEDIA_FILE = MediaFile()
NOTE_FILE = NoteFile()
OUTPUT_DIR = OutputDir()
OUTPUT_FILE = OutputFile()
OUTPUT_FILE_OR_DIR = OutputFile(dir_okay=True)
