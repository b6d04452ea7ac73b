"""PyTorch graph optimization: FP32 passes over torch.fx graphs and bf16 auto mixed precision.

Passes come from the ``tunekit.passes`` entry points named ``pytorch.*`` (see
:mod:`tunekit.graph.registry`). Those ordered below :data:`.optimize.LOWERING_ORDER` keep every
Conv/Linear an ordinary ``nn`` module, so their result can still be tuned (bf16/fp32 per op) or
quantized; the ones from it on lower the FP32 graph (``mkldnn_layout``: MKLDNN modules;
``torchscript``: frozen TorchScript where it measures faster), and bf16 models get the
``channels_last`` layout. The PyTorch adaptor reaches all of it through its ``optimize_graph``
and ``save_optimized``.
"""
