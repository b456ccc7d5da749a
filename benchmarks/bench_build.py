"""The lexical engine's build alone: wall time, CPU time, peak and kept memory, one size a process.

Run by hand from the repository root::

    python benchmarks/bench_build.py --passages 100000 [--repeat 3] [--profile]

Corpus: ``bench_engine.generate_documents(N, seed)`` (bench_peers's seed), generated once and
cached as a pickle under ``--cache``. Each build runs in a fresh child process: the documents are
read, RSS is settled, the peak (``VmHWM``) reset, then ``Engine(documents, semantic=False)`` with
its on-disk index off is timed (``perf_counter`` and ``process_time``); *kept* is RSS after
``gc`` and ``malloc_trim`` less RSS before. The machine's load average is printed beside each
build, since wall time on a shared machine is noisy (CPU time is the figure to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_peers import DEFAULT_SEED, reset_peak, settle, status_kb  # noqa: E402


def corpus(cache: Path, passages: int, seed: int) -> Path:
    where = cache / f"documents-{passages}-{seed}.pickle"
    if not where.exists():
        from bench_engine import generate_documents

        cache.mkdir(parents=True, exist_ok=True)
        with open(where.with_suffix(".tmp"), "wb") as f:
            pickle.dump(generate_documents(passages, seed), f, protocol=pickle.HIGHEST_PROTOCOL)
        where.with_suffix(".tmp").rename(where)
    return where


def build_once(where: Path, profile: bool) -> dict[str, float]:
    from bot.engine import Engine

    with open(where, "rb") as f:
        documents = pickle.load(f)
    settle()
    reset_peak()
    before = status_kb("VmRSS")
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        engine = profiler.runcall(Engine, documents, semantic=False, index_cache_above=sys.maxsize)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    else:
        engine = Engine(documents, semantic=False, index_cache_above=sys.maxsize)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = status_kb("VmHWM")
    settle()
    after = status_kb("VmRSS")
    return {
        "passages": len(engine.passages),
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_mb": (peak - before) / 1024,
        "kept_mb": (after - before) / 1024,
        "load": load,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--repeat", type=int, default=1, help="builds, each in its own process")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/articlebot-bench-build"))
    parser.add_argument("--profile", action="store_true", help="cProfile the build (slower)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(build_once(args.child, args.profile)))
        return 0
    where = corpus(args.cache, args.passages, args.seed)
    for _ in range(args.repeat):
        command = [sys.executable, __file__, "--child", str(where)] + (["--profile"] if args.profile else [])
        out = subprocess.run(command, check=True, text=True, stdout=subprocess.PIPE)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['passages']:,} passages: build {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU, "
            f"peak +{r['peak_mb']:.0f} MB, kept {r['kept_mb']:.0f} MB (load {r['load']:.2f})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
