"""One adaptor contract suite (tunekit.testing.adaptor_contract), run on every framework."""

from __future__ import annotations

from typing import Any

import pytest

from tunekit.testing import FakeAdaptor, FakeModel, fake_data
from tunekit.testing.adaptor_contract import AdaptorContract


@pytest.fixture(scope="module")
def tf_adaptor(tf: Any) -> Any:
    """One instance for the module: it caches each model's conversion and calibration."""
    from tunekit.adaptors.tensorflow import TensorFlowAdaptor

    return TensorFlowAdaptor()


class TestPyTorchAdaptor(AdaptorContract):
    @pytest.fixture
    def adaptor(self) -> Any:
        from tunekit.adaptors.pytorch import PyTorchAdaptor

        return PyTorchAdaptor()

    @pytest.fixture
    def model(self, digits_model: Any) -> Any:
        return digits_model

    @pytest.fixture
    def other_model(self, other_digits_model: Any) -> Any:
        return other_digits_model

    @pytest.fixture
    def calib(self, calib: list) -> list:
        return calib

    @pytest.fixture
    def eval_data(self, eval_data: list) -> list:
        return eval_data[:1]


class TestTensorFlowAdaptor(AdaptorContract):
    @pytest.fixture
    def adaptor(self, tf_adaptor: Any) -> Any:
        return tf_adaptor

    @pytest.fixture
    def model(self, keras_digits: Any) -> Any:
        return keras_digits

    @pytest.fixture
    def other_model(self, keras_other: Any) -> Any:
        return keras_other

    @pytest.fixture
    def calib(self, keras_calib: list) -> list:
        return keras_calib

    @pytest.fixture
    def eval_data(self, keras_eval: list) -> list:
        return keras_eval[:1]


class TestOnnxRuntimeAdaptor(AdaptorContract):
    @pytest.fixture
    def adaptor(self) -> Any:
        from tunekit.adaptors.onnxrt import OnnxRuntimeAdaptor

        return OnnxRuntimeAdaptor()

    @pytest.fixture
    def model(self, onnx_digits: Any) -> Any:
        return onnx_digits

    @pytest.fixture
    def other_model(self, onnx_other: Any) -> Any:
        return onnx_other

    @pytest.fixture
    def calib(self, onnx_calib: list) -> list:
        return onnx_calib

    @pytest.fixture
    def eval_data(self, onnx_eval: list) -> list:
        return onnx_eval[:1]


class TestFakeAdaptor(AdaptorContract):
    """The shipped test double keeps the contract too, so strategy tests built on it hold."""

    @pytest.fixture
    def adaptor(self) -> Any:
        return FakeAdaptor()

    @pytest.fixture
    def model(self) -> Any:
        return FakeModel()

    @pytest.fixture
    def other_model(self) -> Any:
        return FakeModel(scale=2.0)

    @pytest.fixture
    def calib(self) -> list:
        return fake_data(200, 100)

    @pytest.fixture
    def eval_data(self) -> list:
        return fake_data(200, 100)


def test_every_suite_checks_the_same_behaviour() -> None:
    checks = {n for n in dir(AdaptorContract) if n.startswith("test_")}
    assert checks and all(
        {n for n in dir(suite) if n.startswith("test_")} >= checks
        for suite in (TestPyTorchAdaptor, TestTensorFlowAdaptor, TestOnnxRuntimeAdaptor,
                      TestFakeAdaptor))
