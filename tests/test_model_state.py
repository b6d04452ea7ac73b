"""Adaptor.model_state, the one per-model state idiom, and the calibrate signature every adaptor
shares (the tuner passes cache_dir to all of them)."""

from __future__ import annotations

import gc
import pickle
from pathlib import Path
from typing import Any

import pytest

from tunekit import config
from tunekit.adaptor import Adaptor
from tunekit.evaluate import Evaluator
from tunekit.metrics.topk import TopK
from tunekit.model_state import LIMIT, STRONG_LIMIT
from tunekit.strategies.basic import BasicStrategy
from tunekit.testing import FakeAdaptor, FakeModel, ModelledLatency, fake_data
from tunekit.tuner import Parts, Tuner


class Model:
    """A model type that allows weak references, as torch modules and Keras models do."""


class Unweakable:
    """A model type without weak references (as ``onnx.ModelProto``)."""

    __slots__ = ()


def test_one_state_per_model_made_once() -> None:
    adaptor, first, second = FakeAdaptor(), Model(), Model()
    made: list[Any] = []
    state = adaptor.model_state(first, lambda: made.append(1) or {"n": 1})
    assert adaptor.model_state(first, lambda: made.append(2) or {}) is state
    assert adaptor.model_state(second, lambda: made.append(3) or {"n": 2}) == {"n": 2}
    assert made == [1, 3]


def test_a_weakly_held_state_dies_with_its_model() -> None:
    adaptor, model = FakeAdaptor(), Model()
    adaptor.model_state(model, dict)
    states = vars(adaptor)["_tunekit_model_states"]
    assert len(states) == 1
    del model
    gc.collect()
    assert len(states) == 0


def test_models_without_weak_references_are_held_and_bounded() -> None:
    adaptor = FakeAdaptor()
    models = [Unweakable() for _ in range(STRONG_LIMIT + 2)]
    states = [adaptor.model_state(m, dict) for m in models]
    assert len(vars(adaptor)["_tunekit_model_states"]) == STRONG_LIMIT
    assert adaptor.model_state(models[-1], dict) is states[-1]  # the newest are kept
    assert adaptor.model_state(models[0], dict) is not states[0]  # the oldest made again


def test_states_that_keep_their_model_alive_stay_bounded() -> None:
    adaptor = FakeAdaptor()
    models = [Model() for _ in range(LIMIT + 3)]
    for model in models:  # each state refers back to its model, as a TensorFlow state does
        adaptor.model_state(model, lambda model=model: {"source": model})
    del models, model
    gc.collect()
    assert len(vars(adaptor)["_tunekit_model_states"]) == LIMIT


def test_a_path_is_one_model_however_spelled(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    adaptor = FakeAdaptor()
    state = adaptor.model_state("model.onnx", dict)
    assert adaptor.model_state(tmp_path / "model.onnx", dict) is state
    assert adaptor.model_state("./model.onnx", dict) is state


def test_states_are_not_pickled_with_the_adaptor() -> None:
    adaptor, model = FakeAdaptor(base_accuracy=0.5), Model()
    adaptor.model_state(model, dict)["statistics"] = 1
    copy = pickle.loads(pickle.dumps(adaptor))
    assert "_tunekit_model_states" not in vars(copy) and copy.base_accuracy == 0.5


def test_a_calibrate_without_cache_dir_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match=r"Old\.calibrate must take the keyword 'cache_dir': "
                                        r"add '\*, cache_dir=None'"):
        class Old(FakeAdaptor):
            def calibrate(self, model: Any, space: Any, calib_data: Any) -> None:
                """Written to the docs before cache_dir was passed to every adaptor."""

    class New(FakeAdaptor):
        def calibrate(self, model: Any, space: Any, calib_data: Any, *,
                      cache_dir: Path | None = None) -> None:
            """Takes it."""

    class Keywords(FakeAdaptor):
        def calibrate(self, model: Any, space: Any, calib_data: Any, **options: Any) -> None:
            """Takes it among any keywords."""

    assert issubclass(New, Adaptor) and issubclass(Keywords, Adaptor)


def test_the_tuner_calibrates_the_tuned_model_once_into_the_workspace(tmp_path: Path) -> None:
    spec = config.parse({"model": {"framework": "pytorch", "factory": "m:f"},
                         "tuning": {"accuracy_criterion": {"absolute": 0.0},
                                    "workspace": {"path": str(tmp_path / "ws")}}},
                        check_plugins=False)
    adaptor, model, data = FakeAdaptor(), FakeModel(), fake_data(200, 100)
    parts = Parts(spec, adaptor, model, data, Evaluator(adaptor, data, TopK(), None),
                  BasicStrategy(), [("latency", ModelledLatency(), 1.0)])
    assert Tuner(parts).run().met
    assert adaptor.calibrations(model) == [tmp_path / "ws" / "calibration"]
    assert adaptor.calibrations(FakeModel()) == []  # an equal model is another model
