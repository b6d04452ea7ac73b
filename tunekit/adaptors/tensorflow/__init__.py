"""TensorFlow adaptor: Keras models and SavedModels, int8 through TFLite, bf16 through Keras.

Importing this package does not import TensorFlow; the adaptor imports it on first use.
"""

from __future__ import annotations

from tunekit.adaptors.tensorflow.adaptor import TensorFlowAdaptor

__all__ = ["TensorFlowAdaptor"]
