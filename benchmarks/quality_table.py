"""The quality table of README.md and docs/ENGINE.md: every question set, weakest first.

    python benchmarks/quality_table.py [--squad ../shared/eval/squad2-public.json]

Runs ``python -m bot eval``'s scoring on each set in semantic and in lexical mode and prints one
Markdown table per mode (hit@1 ascending), plus the SQuAD reliability table (semantic mode).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.engine import Engine  # noqa: E402
from bot.engine.evaluate import evaluate, evaluate_squad, load_questions, parse_squad  # noqa: E402

SETS = (
    ("`evals/dev.jsonl` (public)", "dev.jsonl"),
    ("`evals/heldout.jsonl` (ours, Discord-style)", "heldout.jsonl"),
    ("`evals/heldout2.jsonl` (ours, plain paraphrase)", "heldout2.jsonl"),
)
COLUMNS = ("hit@1", "hit@3", "mrr@5", "sentence_hit@1")


def row(name: str, figures: dict[str, float | int], off_topic: str, near_miss: str) -> str:
    cells = [name, f"{figures['questions']:,}"] + [f"{float(figures[c]):.3f}" for c in COLUMNS]
    cells += [
        f"{float(figures[off_topic]):.3f}",
        f"{float(figures[near_miss]):.3f}",
        f"{float(figures['wrongly_declined']):.3f}",
        f"{float(figures['calibration_error']):.3f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--squad", type=Path, default=ROOT.parent / "shared" / "eval" / "squad2-public.json")
    args = parser.parse_args()
    articles = parse_squad(args.squad.read_text(encoding="utf-8"), args.squad)
    for semantic in (True, False):
        engine = Engine.from_path(ROOT / "corpus", semantic=semantic)
        rows = []
        for name, file in SETS:
            figures = evaluate(engine, load_questions(ROOT / "evals" / file)).figures()
            rows.append((figures["hit@1"], row(name, figures, "declined_offtopic", "declined_near_miss")))
        squad = evaluate_squad(articles, semantic=semantic).overall
        figures = squad.figures()
        name = f"SQuAD 2.0, {len(articles)} articles (`squad2-public.json`)"
        rows.append((figures["hit@1"], row(name, figures, "declined_other_article", "declined_unanswerable")))
        print(f"\n{'Semantic' if semantic else 'Lexical'} mode:\n")
        print(
            "| set | questions | hit@1 | hit@3 | MRR@5 | sentence hit@1 | off-topic declined "
            "| near-miss declined | wrongly declined | calibration error |"
        )
        print("| --- " * 10 + "|")
        for _, line in sorted(rows):
            print(line)
        if semantic:
            print("\nSQuAD reliability (semantic mode):\n")
            print("| confidence | questions | mean confidence | accuracy |")
            print("| --- | --- | --- | --- |")
            for b in squad.reliability():
                if b.count:
                    span = f"{b.low:.1f}–{b.high:.1f}"
                    print(f"| {span} | {b.count} | {b.mean_confidence:.3f} | {b.accuracy:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
