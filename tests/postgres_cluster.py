"""A throwaway PostgreSQL cluster from ``.ci/postgres``, for the test session and the benchmarks.

    with throwaway_cluster() as (url, directory):
        ...  # url logs in to the cluster's `postgres` database as a superuser

Started in a folder of its own under /tmp, not under pytest's tmp_path: as root the server runs as
the `postgres` user, and pytest's folders are private to us. Stopped and removed on the way out,
however the block ends.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_SCRIPT = ROOT / ".ci" / "postgres"


class ClusterError(RuntimeError):
    """.ci/postgres could not start a server; the message is its own one line."""


def exports(text: str) -> dict[str, str]:
    """The ``export NAME=value`` lines ``.ci/postgres start`` prints."""
    found = {}
    for line in text.splitlines():
        name, sep, value = line.removeprefix("export ").partition("=")
        if line.startswith("export ") and sep:
            found[name] = value
    return found


@contextmanager
def throwaway_cluster() -> Iterator[tuple[str, Path]]:
    directory = Path(tempfile.mkdtemp(prefix="articlebot-pg."))
    started = subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), "start", str(directory)], capture_output=True, text=True
    )
    if started.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise ClusterError(started.stderr.strip() or f".ci/postgres start exited with {started.returncode}")
    try:
        yield exports(started.stdout)["ARTICLEBOT_TEST_POSTGRES_URL"], directory
    finally:
        subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop", str(directory)], check=False)
        shutil.rmtree(directory, ignore_errors=True)
