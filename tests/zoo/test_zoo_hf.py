"""A HuggingFace BERT (tiny random-init BertConfig) fed the batches its users have, tuned through
tunekit.tune on top-1 agreement with the FP32 model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tunekit.adaptors.pytorch import PyTorchAdaptor
from tunekit.batches import layout
from tunekit.config import DataSpec

from tests.zoo.zoo_models import assert_tuned, predictions, tiny_bert, tokens, tune


@pytest.fixture(scope="module")
def bert() -> Any:
    return tiny_bert("bert")


def _dicts(model: Any, count: int) -> list[dict[str, Any]]:
    """HF-style batches: the tokenizer's keys plus ``labels`` (the FP32 top-1)."""
    return [{"input_ids": ids, "attention_mask": mask,
             "labels": predictions(model, {"input_ids": ids, "attention_mask": mask})}
            for ids, mask in tokens(count)]


def _nested(model: Any, count: int) -> list[tuple[tuple[Any, Any], Any]]:
    return [(pair, predictions(model, pair)) for pair in tokens(count)]


@pytest.mark.slow
def test_dict_batches_with_labels(bert: Any, tmp_path: Path) -> None:
    """(a) ``{"input_ids", "attention_mask", "labels"}``: labels taken out before the call."""
    result = tune(bert, _dicts(bert, 2), tmp_path, eval_data=_dicts(bert, 4),
                  metric={"name": "topk"})
    assert result.baseline["metric"] == 1.0
    assert_tuned(result, floor=0.9)


@pytest.mark.slow
def test_inputs_only_pairs_for_calibration(bert: Any, tmp_path: Path) -> None:
    """(b) an inputs-only loader of ``(input_ids, attention_mask)`` pairs: the pair is the
    inputs (same shape: a mask beside its ids), never ``(inputs, labels)``."""
    adaptor = PyTorchAdaptor()
    read = layout(tokens(1)[0], lambda inputs: adaptor.run_batch(bert, inputs),
                  adaptor.forward_signature(bert), DataSpec(), "calibration batch 0")
    assert read.split(tokens(1)[0])[1] is None  # both tensors are inputs
    result = tune(bert, tokens(2), tmp_path, eval_data=_nested(bert, 4), metric={"name": "topk"})
    assert_tuned(result, floor=0.9)


@pytest.mark.slow
def test_nested_inputs_with_labels(bert: Any, tmp_path: Path) -> None:
    """(c) ``((input_ids, attention_mask), labels)`` for calibration and evaluation alike."""
    result = tune(bert, _nested(bert, 2), tmp_path, eval_data=_nested(bert, 4),
                  metric={"name": "topk"})
    assert_tuned(result, floor=0.9)


@pytest.mark.slow
def test_an_eval_func_gets_the_tuned_model_to_call_hf_style(bert: Any, tmp_path: Path) -> None:
    batches = _dicts(bert, 3)

    def agreement(model: Any) -> float:
        hits = total = 0
        for batch in batches:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            hits += int((model(**inputs).logits.argmax(-1) == batch["labels"]).sum())
            total += len(batch["labels"])
        return hits / total

    result = tune(bert, _dicts(bert, 2), tmp_path, eval_func=agreement)
    assert_tuned(result, floor=0.9)
