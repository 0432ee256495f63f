"""Files that hold secrets or state: created whole or not at all, never overwritten."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE = 0o600
PUBLIC = 0o644

# Size limits of the small files the tools read whole (units: bytes).  A bundle holds three
# PEM certificates/keys and the trust root (about 4 KiB); the limits leave room for long
# certificate chains but stop `--profile /dev/zero` or a misplaced video from being read.
MAX_BUNDLE_BYTES = 1024 * 1024
MAX_PEM_BYTES = 1024 * 1024
MAX_NOTE_BYTES = 64 * 1024
MAX_TAXONOMY_BYTES = 16 * 1024 * 1024


class FileTooLargeError(ValueError):
    """A file is larger than the limit for its kind (or endless, like ``/dev/zero``)."""


def read_bounded(path: Path | str, limit: int, what: str) -> bytes:
    """Read the whole of ``path``, refusing more than ``limit`` bytes.

    Raises FileTooLargeError naming ``what``, the path and the limit (reading stops after
    ``limit + 1`` bytes, so a device or a huge file costs no time), and OSError as ``open``
    does.
    """
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(
            f"{path}: larger than {limit:,} bytes, too large for {what} (is it the right file?)"
        )
    return data


def write_new_file(path: Path | str, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` holding ``data``, atomically and without overwriting.

    The data goes to a fresh temporary file (O_CREAT|O_EXCL, ``mode``) in the same directory,
    is fsynced, then hard-linked into place: ``link`` fails with FileExistsError if ``path``
    exists, so a crash never leaves a partial key and a race never clobbers one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask must not change the mode we promise
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform; the file itself is already durable
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
