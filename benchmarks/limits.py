"""How close tunekit's tuned PyTorch model comes to the fastest int8 path of the framework itself.

    .venv/bin/python benchmarks/limits.py [--models resnet,bert,hf_bert] [--rounds N]

Models (random init, defined here): a ResNet-18-like CNN at 224², a BERT-like encoder (4 layers,
hidden 256, 4 heads, FFN 1024, seq 128) and a ``transformers`` ``BertForSequenceClassification``
from a small ``BertConfig`` (same sizes). Variants, all built in this one process:

- ``fp32 eager``: the model under ``inference_mode`` (the 1.00× reference);
- ``tunekit tuned``: ``tunekit.tune`` with an evaluation that accepts every candidate (so the
  all-int8 default is the result), the default latency objective and ``backend: auto``, timed as
  ``result.best_model`` (whatever backend tunekit deployed);
- ``fx int8 + jit``: torch.ao's FX graph mode with its x86 default qconfig, then
  ``torch.jit.trace`` + ``freeze`` (the deprecated path; models FX cannot trace show ``n/a``);
- ``pt2e int8 + inductor``: ``torch.export`` → torchao ``prepare_pt2e`` with
  ``X86InductorQuantizer``'s default global config → ``convert_pt2e`` → ``torch.compile``
  with frozen weights;
- ``bf16 compiled``: the model cast to bf16, ``torch.compile`` with frozen weights.

Timing: batch 1 and 32, rounds interleaved over the variants (the machine is shared, load falls
on all alike), median per call. The check per model: tunekit's fraction of the fastest int8 path
(fastest int8 latency / tunekit's latency) at batch 32, PASS if ≥ 0.95; exit status 1 on a FAIL.
Compiles: Inductor compiles each compiled variant once per batch size (10-60 s each here).
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent / "workloads"))
import refmodels

BATCHES = (1, 32)
TARGET = 0.95
SEQ, HIDDEN, LAYERS, HEADS, FFN, VOCAB = 128, 256, 4, 4, 1024, 30522
TUNEKIT, FX, PT2E, BF16, FP32 = ("tunekit tuned", "fx int8 + jit", "pt2e int8 + inductor",
                                 "bf16 compiled", "fp32 eager")
INT8 = (FX, PT2E)


# ----------------------------------------------------------------------------------- models
def hf_bert() -> nn.Module:
    import transformers

    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN,
                                     num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                     intermediate_size=FFN, max_position_embeddings=512)
    return transformers.BertForSequenceClassification(config).eval()


def with_trained_bn(model: nn.Module) -> nn.Module:
    """Random BatchNorm statistics, as after training, so folding them has real work to do."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    return model.eval()


def inputs_for(name: str, batch: int, seed: int = 0) -> Any:
    generator = torch.Generator().manual_seed(seed)
    if name == "resnet":
        return torch.randn(batch, 3, 224, 224, generator=generator)
    ids = torch.randint(0, VOCAB, (batch, SEQ), generator=generator)
    return ids if name == "bert" else {"input_ids": ids,
                                       "attention_mask": torch.ones_like(ids)}


MODELS: dict[str, tuple[str, Callable[[], nn.Module]]] = {
    "resnet": ("ResNet-18-like 224²", lambda: with_trained_bn(refmodels.build_r2())),
    "bert": ("BERT-like encoder seq128", refmodels.build_r3),
    "hf_bert": ("transformers BERT (small BertConfig)", hf_bert),
}


# --------------------------------------------------------------------------------- variants
def call(model: Any, inputs: Any) -> Any:
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def tunekit_tuned(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    import tunekit

    calib = [(inputs_for(name, 32, seed), None) for seed in (1, 2)]
    with tempfile.TemporaryDirectory() as workspace:
        result = tunekit.tune(model, calib, eval_func=lambda candidate: 1.0,
                              framework="pytorch", max_trials=1, workspace=workspace)
    deployment = result.deployment
    timings = ", ".join(f"{k} {v:.1f} ms" for k, v in deployment.get("latency_ms", {}).items())
    return result.best_model, f"{deployment.get('backend')}; its timing at bs32: {timings or '—'}"


def fx_jit(model: nn.Module, name: str) -> Callable[[int], Any]:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    example = inputs_for(name, 32, 1)
    prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("x86"), (example,))
    with torch.no_grad():
        call(prepared, inputs_for(name, 32, 2))
    quantized = convert_fx(prepared)
    traced: dict[int, Any] = {}

    def for_batch(batch: int) -> Any:  # traced per batch size: a trace may bake sizes in
        if batch not in traced:
            with torch.no_grad():
                traced[batch] = torch.jit.freeze(
                    torch.jit.trace(quantized, inputs_for(name, batch)).eval())
        return traced[batch]
    return for_batch


def pt2e_inductor(model: nn.Module, name: str) -> nn.Module:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    example = inputs_for(name, 32, 1)
    args, kwargs = ((), example) if isinstance(example, dict) else ((example,), {})
    shapes = ({k: {0: torch.export.Dim.AUTO} for k in kwargs} if kwargs
              else ({0: torch.export.Dim.AUTO},))
    graph = torch.export.export(copy.deepcopy(model), args, kwargs or None,
                                dynamic_shapes=shapes).module()
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        call(prepared, inputs_for(name, 32, 2))
    return torch.compile(convert_pt2e(prepared), dynamic=False)


def bf16_compiled(model: nn.Module) -> nn.Module:
    return torch.compile(copy.deepcopy(model).to(torch.bfloat16), dynamic=False)


def build_variants(name: str, model: nn.Module) -> tuple[dict[str, Any], dict[str, str]]:
    """Variant name → model or ``batch → model``; failures by variant name (``n/a`` rows)."""
    builders: dict[str, Callable[[], Any]] = {
        TUNEKIT: lambda: tunekit_tuned(model, name), FX: lambda: fx_jit(model, name),
        PT2E: lambda: pt2e_inductor(model, name), BF16: lambda: bf16_compiled(model)}
    variants: dict[str, Any] = {FP32: model}
    failed: dict[str, str] = {}
    for variant, build in builders.items():
        start = time.perf_counter()
        try:
            built = build()
        except Exception as exc:  # noqa: BLE001 - a path that cannot take the model: n/a
            failed[variant] = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
            continue
        if variant == TUNEKIT:
            built, backend = built
            failed["tunekit backend"] = backend
        variants[variant] = built
        print(f"  {variant}: built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return variants, failed


def timed(variants: dict[str, Any], name: str, batch: int, rounds: int) -> dict[str, float]:
    """Median seconds per call at ``batch``, rounds interleaved; warm-up compiles first."""
    inputs = inputs_for(name, batch, 3)
    runners: dict[str, Callable[[], Any]] = {}
    with torch.inference_mode():
        for variant, model in variants.items():
            model = model(batch) if callable(model) and not isinstance(model, nn.Module) \
                else model
            x = inputs
            if variant == BF16 and name == "resnet":
                x = inputs.to(torch.bfloat16)
            runners[variant] = (lambda m=model, v=x: call(m, v))
            for _ in range(2):
                runners[variant]()
        samples: dict[str, list[float]] = {v: [] for v in runners}
        for _ in range(rounds):
            for variant, run in runners.items():
                calls, start = 0, time.perf_counter()
                while calls == 0 or time.perf_counter() - start < 0.2:
                    run()
                    calls += 1
                samples[variant].append((time.perf_counter() - start) / calls)
    return {v: statistics.median(s) for v, s in samples.items()}


# ------------------------------------------------------------------------------------ report
def report(name: str, times: dict[int, dict[str, float]], notes: dict[str, str]) -> bool:
    title = MODELS[name][0]
    print(f"\n### {title} (tunekit deployed: {notes.get('tunekit backend', 'n/a')})\n")
    print("| variant | " + " | ".join(f"bs{b} ms | bs{b} ×fp32" for b in BATCHES) + " |")
    print("|---|" + "---|---|" * len(BATCHES))
    for variant in (FP32, TUNEKIT, FX, PT2E, BF16):
        cells = []
        for batch in BATCHES:
            t = times[batch].get(variant)
            cells += [f"{t * 1e3:.2f}", f"{times[batch][FP32] / t:.2f}×"] if t else ["n/a", ""]
        why = f" ({notes[variant]})" if variant in notes else ""
        print(f"| {variant}{why} | " + " | ".join(cells) + " |")
    passed = True
    for batch in BATCHES:
        int8 = [times[batch][v] for v in INT8 if v in times[batch]]
        if TUNEKIT not in times[batch] or not int8:
            fraction = 0.0
        else:
            fraction = min(int8) / times[batch][TUNEKIT]
        line = f"{title} bs{batch}: tunekit / fastest int8 path = {fraction:.2f}"
        if batch == 32:
            passed = fraction >= TARGET
            print(f"\n{'PASS' if passed else 'FAIL'}  {line} (target ≥ {TARGET})")
        else:
            print(f"\ninfo  {line}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated subset of {', '.join(MODELS)}")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    args = parser.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    torch.set_num_threads(2)
    torch.manual_seed(0)
    torch._inductor.config.freezing = True
    warnings.filterwarnings("ignore")
    logging.getLogger("torchao").setLevel(logging.ERROR)
    passed = True
    for name in names:
        print(f"building {MODELS[name][0]}", file=sys.stderr)
        variants, notes = build_variants(name, MODELS[name][1]())
        times = {batch: timed(variants, name, batch, args.rounds) for batch in BATCHES}
        passed &= report(name, times, notes)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
