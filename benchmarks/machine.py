"""Facts about the machine and the code a benchmark measured, for the reports it writes in docs/."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def last_commit(path: str) -> str:
    """The last commit that changed ``path`` (read-only git), and whether it has local changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("log", "-1", "--format=%h %s", "--", path)
        dirty = git("status", "--porcelain", "--", path)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return (commit or "uncommitted") + (f" + local changes in {path}/" if dirty else "")


def _proc_field(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def facts(versions: dict[str, str], measured: tuple[str, str]) -> dict[str, str]:
    """CPU, cores, memory, Python, the given package versions, OS, date, and what was measured."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = _proc_field("/proc/meminfo", "MemTotal")
    return {
        "CPU": _proc_field("/proc/cpuinfo", "model name") or "unknown",
        "cores": f"{usable} usable ({os.cpu_count()} online)",
        "memory": f"{int(memory.split()[0]) / 1024 / 1024:.1f} GiB" if memory else "unknown",
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        **versions,
        "OS": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        measured[0]: measured[1],
    }


def facts_and_command(found: dict[str, str], command: str) -> list[str]:
    """A report's Markdown lines for the machine's facts and the command that measured them."""
    return [
        *[f"- **{k}**: {v}" for k, v in found.items()],
        "",
        "Command (from the repository root):",
        "",
        "```",
        command,
        "```",
        "",
    ]
