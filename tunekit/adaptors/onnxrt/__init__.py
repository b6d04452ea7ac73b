"""ONNX Runtime adaptor (entry point ``onnxrt``; extra ``tunekit[onnxrt]``)."""

from tunekit.adaptors.onnxrt.adaptor import OnnxRuntimeAdaptor
from tunekit.adaptors.onnxrt.runtime import OrtModel

__all__ = ["OnnxRuntimeAdaptor", "OrtModel"]
