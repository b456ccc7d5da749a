"""A server adding 30 documents of about 1 MB each beside the article, one by one (benchmark, not a
test): what each add costs, what memory the process holds, and whether another server's answers
slow down meanwhile.

    python benchmarks/bench_layers.py [--documents 30] [--megabytes 1.0]

Lexical engine (the semantic stage would encode each document: about 0.03 s a text). Each add is
``Engine.with_documents(all of the server's documents, previous=the engine before)``, as the bot's
library does (a 1 MB document is indexed in a worker process; ``--in-thread``: in this process, as
before); it runs in a worker thread while the main thread asks the article's engine (another
server's) questions, and the p99 of those asks is compared with the same asks with nothing else
running.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import generate_documents, question_mix  # noqa: E402

from bot.engine import Document, Engine  # noqa: E402
from bot.engine.engine import BUILD_APART_ABOVE  # noqa: E402
from bot.engine.evaluate import load_questions  # noqa: E402
from bot.engine.memory import release_freed_memory  # noqa: E402


def rss_mb(kind: str = "VmRSS") -> float:
    """The process's resident memory; ``RssFile``: the part that is mapped files (the layers'
    on-disk indexes: clean pages the kernel may drop and read again), ``RssAnon`` the rest."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{kind}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_document(number: int, megabytes: float) -> Document:
    """About ``megabytes`` of generated paragraphs under headings, as one server document."""
    blocks = []
    size = 0
    seed = 1000 + number
    while size < megabytes * 1_000_000:
        for document in generate_documents(400, seed=seed):
            for block in document.blocks:
                blocks.append(block)
                size += len(block.text.encode())
        seed += 100
    return Document(f"g1-doc-{number:02d}", f"Document {number}", blocks=blocks)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def asks(
    engine: Engine, questions: list[str], stop: threading.Event | None, rounds: int, seconds: float = 0.0
) -> list[float]:
    """Ask the questions ``rounds`` times, until ``stop`` is set, or (``seconds``) for that long."""
    timings = []
    until = time.perf_counter() + seconds
    for _ in range(rounds):
        for question in questions:
            started = time.perf_counter()
            engine.ask(question)
            timings.append((time.perf_counter() - started) * 1000)
            if (stop is not None and stop.is_set()) or (seconds and started > until):
                return timings
    return timings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=30)
    parser.add_argument("--megabytes", type=float, default=1.0)
    parser.add_argument(
        "--in-thread",
        action="store_true",
        help="index every document in this process (as before layers had workers)",
    )
    args = parser.parse_args()
    base = Engine.from_path(ROOT / "corpus", semantic=False)
    process_above = 10**12 if args.in_thread else BUILD_APART_ABOVE
    other_questions = [q["question"] for q in load_questions(ROOT / "evals" / "dev.jsonl")]
    docs = [one_document(i, args.megabytes) for i in range(args.documents)]
    server_questions = question_mix(200, seed=5, documents=docs[:3])
    release_freed_memory()
    start_rss = rss_mb()
    quiet = asks(base, other_questions, None, rounds=20)
    p50, p99 = percentile(quiet, 0.5), percentile(quiet, 0.99)
    print(f"article engine alone: ask p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(f"process RSS before the adds: {start_rss:.0f} MB (documents generated: {len(docs)})")
    print(
        "| add | passages in the server | add (s) | its CPU in this process (s) | RSS (MB) "
        "| other server's ask p99 meanwhile (ms) | just after, as long, nothing running (ms) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    engine: Engine | None = None
    adds: list[float] = []
    held: list[float] = []
    during: list[float] = []
    quiet_after: list[float] = []
    for n in range(1, len(docs) + 1):
        done = threading.Event()
        result: list[Engine] = []

        def add(
            count: int = n,
            before: Engine | None = engine,
            out: list[Engine] = result,
            ready: threading.Event = done,
        ) -> None:
            started, cpu = time.perf_counter(), time.thread_time()
            out.append(base.with_documents(docs[:count], previous=before, process_above=process_above))
            adds.append(time.perf_counter() - started)
            # This thread's CPU: what the add held the interpreter lock for, about (a worker
            # process's indexing is not in it).
            held.append(time.thread_time() - cpu)
            ready.set()

        worker = threading.Thread(target=add)
        worker.start()
        timings = asks(base, other_questions, done, rounds=10_000)
        worker.join()
        during += timings
        engine = result[0]
        release_freed_memory()
        # The same asks for as long with no add running, right after: the machine's other load
        # (shared cores) is then about what it was during the add.
        after = asks(base, other_questions, None, rounds=10_000, seconds=adds[-1])
        quiet_after += after
        print(
            f"| {n} | {len(engine.passages):,} | {adds[-1]:.2f} | {held[-1]:.2f} | {rss_mb():.0f} | "
            f"{percentile(timings, 0.99):.2f} | {percentile(after, 0.99):.2f} |",
            flush=True,
        )
    assert engine is not None
    server = asks(engine, server_questions, None, rounds=2)
    print(
        f"\nadds: max {max(adds):.2f} s, median {percentile(adds, 0.5):.2f} s, CPU in this process median "
        f"{percentile(held, 0.5):.2f} s; RSS {rss_mb():.0f} MB "
        f"(+{rss_mb() - start_rss:.0f} MB for {len(docs)} documents, {len(engine.passages):,} passages; "
        f"{rss_mb('RssAnon'):.0f} MB anonymous, {rss_mb('RssFile'):.0f} MB mapped files)"
    )
    print(
        f"other server's ask p99: {percentile(quiet, 0.99):.2f} ms alone before, "
        f"{percentile(during, 0.99):.2f} ms during the adds, {percentile(quiet_after, 0.99):.2f} ms just "
        f"after each (p50 {percentile(during, 0.5):.2f} / {percentile(quiet_after, 0.5):.2f} ms); "
        f"the server's own ask p50 {percentile(server, 0.5):.2f} ms, "
        f"p99 {percentile(server, 0.99):.2f} ms over {len(engine.parts)} layers"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
