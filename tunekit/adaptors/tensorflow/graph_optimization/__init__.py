"""TensorFlow graph optimization over frozen GraphDefs.

Passes come from the ``tunekit.passes`` entry points named ``tensorflow.*`` (see
:mod:`tunekit.graph.registry`): ``strip``, ``constant_fold``, ``fold_batchnorm``, ``arithmetic``,
then ``auto_mixed_precision`` (bf16 only: Grappler's bf16 lists name the unfused ops, so it runs
before fusion) or ``remapper`` (FP32 only).
"""
