"""One adaptor contract suite (tunekit.testing.adaptor_contract), run on every framework."""

from __future__ import annotations

from typing import Any

import pytest

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
    def calib(self, keras_calib: list) -> list:
        return keras_calib

    @pytest.fixture
    def eval_data(self, keras_eval: list) -> list:
        return keras_eval[:1]


def test_both_suites_check_the_same_behaviour() -> None:
    checks = {n for n in dir(AdaptorContract) if n.startswith("test_")}
    assert checks and all(
        {n for n in dir(suite) if n.startswith("test_")} >= checks
        for suite in (TestPyTorchAdaptor, TestTensorFlowAdaptor))
