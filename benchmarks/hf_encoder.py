#!/usr/bin/env python
"""A HuggingFace BERT encoder fed its natural batches, tuned through ``tunekit.tune``: is the
result faster than FP32 and within 2% of its accuracy?

    python benchmarks/hf_encoder.py [--approaches static,dynamic] [--layers 4] [--hidden 256]

The encoder is a random-init ``BertForSequenceClassification`` (no weights are downloaded);
its batches are the dicts a tokenizer gives (``input_ids``, ``attention_mask``, padding in the
last fifth, and ``labels``), the labels being the FP32 model's own top-1, so accuracy is top-1
agreement with FP32 (baseline 1.0) and "within 2%" is the tuning's goal. Per approach, the
tuned model and FP32 are timed by the tuning's ``performance`` objective, FP32 measured beside
each candidate in the same process. A row PASSes when the goal is met and the tuned model is
faster than FP32 (speedup = FP32 time / model time > 1); any FAIL exits 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from typing import Any

import torch

import tunekit


def encoder(layers: int, hidden: int) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                        num_labels=2)
    return BertForSequenceClassification(config).eval()


def batches(model: torch.nn.Module, count: int, size: int = 8,
            length: int = 128) -> list[dict[str, Any]]:
    """Tokenizer-style dicts with ``labels`` (the FP32 top-1)."""
    out = []
    for _ in range(count):
        ids = torch.randint(1000, 30000, (size, length))
        mask = torch.ones_like(ids)
        mask[:, length * 4 // 5:] = 0
        with torch.no_grad():
            labels = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


def run(model: torch.nn.Module, approach: str) -> dict[str, Any]:
    calib, evaluation = batches(model, 4), batches(model, 8)
    result = tunekit.tune(model, calib, eval_data=evaluation, metric={"name": "topk"},
                          accuracy_criterion={"relative": 0.02}, approach=approach,
                          max_trials=6, workspace=tempfile.mkdtemp(prefix="hf_encoder_"),
                          quiet=True)
    best = result.best_trial
    figures = dict(best.details) if best is not None else {}
    fp32, tuned = figures.get("performance.fp32"), figures.get("performance")
    speedup = fp32 / tuned if fp32 and tuned else None
    # a model faster only once deployed (PT2E compiled where the trials ran eagerly) carries the
    # speedup measured beside FP32 after deployment
    speedup = result.deployment.get("deployed_speed", {}).get("performance", speedup)
    return {"approach": approach, "met": result.met, "metric": best.metric if best else None,
            "fp32_ms": fp32 * 1e3 if fp32 else None, "tuned_ms": tuned * 1e3 if tuned else None,
            "speedup": speedup, "ok": bool(result.met and speedup and speedup > 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--approaches", default="static,dynamic")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(1)
    model = encoder(args.layers, args.hidden)
    rows = [run(model, approach) for approach in args.approaches.split(",")]
    print(f"BERT {args.layers} layers x {args.hidden}, batch 8 x 128 tokens, "
          f"{torch.get_num_threads()} threads")
    print("| approach | agreement with FP32 | goal met | FP32 ms | tuned ms | speedup | check |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        cells = [row["approach"], _num(row["metric"], 4), "yes" if row["met"] else "no",
                 _num(row["fp32_ms"], 1), _num(row["tuned_ms"], 1), _num(row["speedup"], 2),
                 "PASS" if row["ok"] else "FAIL"]
        print("| " + " | ".join(cells) + " |")
    return 0 if all(row["ok"] for row in rows) else 1


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
