"""Real filesystem faults for storage tests: a read-only file or folder, a full disk.

Tests run as root here, and root ignores file modes: ``chmod 444`` does not stop root writing.
So, as root, a path is made read-only with the immutable attribute (``chattr +i``: even root gets
EPERM on open-for-write and on creating files in an immutable folder); as another user a plain
``chmod`` does the same job. Either way the helper checks that writing really fails before the
test relies on it.

A full disk is a small tmpfs filled to the last block (``mount`` needs root, CAP_SYS_ADMIN). Where
that is impossible the helper raises instead of pretending: SQLite's ``PRAGMA max_page_count``
(a real SQLITE_FULL, but per connection) covers the in-process cases without it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

AS_ROOT = os.geteuid() == 0


def _writes_fail(path: Path) -> bool:
    try:
        if path.is_dir():
            probe = path / ".write-probe"
            probe.touch()
            probe.unlink()
        else:
            with path.open("r+b"):
                pass
    except OSError:
        return True
    return False


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """``path`` (a file or a folder) made read-only for this process until exit."""
    if AS_ROOT:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        undo = ["chattr", "-i", str(path)]
    else:
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        assert _writes_fail(path), f"could not make {path} read-only for this test"
        yield path
    finally:
        if AS_ROOT:
            subprocess.run(undo, check=True)
        else:
            path.chmod(mode)


@contextlib.contextmanager
def small_disk(where: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (created), unmounted on exit."""
    if not AS_ROOT:
        raise RuntimeError("a full-disk test mounts a small tmpfs, which needs root (CAP_SYS_ADMIN)")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        # Lazy: a process that still has a file open there must not make the unmount fail.
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(disk: Path) -> None:
    """Write to ``disk`` until it has no block left (ENOSPC)."""
    with contextlib.suppress(OSError), (disk / "filler").open("wb") as filler:
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()
    with contextlib.suppress(OSError), (disk / "filler-tail").open("wb") as tail:
        while True:  # the last few blocks, one at a time
            tail.write(b"\0" * 512)
            tail.flush()
    free = os.statvfs(disk)
    assert free.f_bavail == 0, f"{disk} still has {free.f_bavail} blocks free"
