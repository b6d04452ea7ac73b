"""Keras models of the kinds users bring, trained in seconds on scikit-learn's bundled datasets.

Each builder returns a trained model and its data as numpy arrays; the tests batch the data the
way each kind of user would (arrays, dicts by input name, ``(inputs, labels)`` pairs). Seeds are
fixed so that every run trains the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = tf.keras
sklearn_datasets = pytest.importorskip("sklearn.datasets")


@dataclass
class Split:
    """Features and labels for calibration/training (``x``, ``y``) and evaluation."""

    x: np.ndarray
    y: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray


def split(x: np.ndarray, y: np.ndarray, seed: int = 0) -> Split:
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order].astype(np.float32), y[order].astype(np.int64)
    cut = int(len(x) * 0.7)
    return Split(x[:cut], y[:cut], x[cut:], y[cut:])


def cancer() -> Split:
    """Breast cancer (569 × 30, 2 classes), standardised."""
    x, y = sklearn_datasets.load_breast_cancer(return_X_y=True)
    return split((x - x.mean(0)) / x.std(0), y)


def digit_rows() -> Split:
    """Digits (8×8, 10 classes) as sequences of 8 rows of 8 pixels in [0, 1]."""
    x, y = sklearn_datasets.load_digits(return_X_y=True)
    return split((x / 16.0).reshape(-1, 8, 8), y)


def raw_wine() -> Split:
    """Wine (178 × 13, 3 classes) with three columns in other units (alcohol and magnesium ×1e3,
    proline ×100): raw features of magnitude 1e4-1e5 beside features below 1."""
    x, y = sklearn_datasets.load_wine(return_X_y=True)
    units = np.ones(13)
    units[[0, 4, 12]] = [1e3, 1e3, 100]
    return split(x * units, y)


def fit(model: Any, data: Split, epochs: int, x: Any = None, lr: float = 1e-2) -> Any:
    """Train ``model`` with Adam on ``data`` (``x`` replaces ``data.x``: named inputs)."""
    keras.utils.set_random_seed(0)
    model.compile(keras.optimizers.Adam(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x if x is None else x, data.y, epochs=epochs, batch_size=32, verbose=0)
    return model


def sequential(data: Split) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((data.x.shape[1],)),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2)])
    return fit(model, data, epochs=15)


#: The two named inputs of :func:`two_inputs`: the 10 mean measurements and the 20 others.
NAMED = {"means": slice(0, 10), "spread": slice(10, 30)}


def named(x: np.ndarray) -> dict[str, np.ndarray]:
    return {name: x[:, cols] for name, cols in NAMED.items()}


def two_inputs(data: Split) -> Any:
    """A Functional model with two named inputs merged by Concatenate."""
    keras.utils.set_random_seed(0)
    means = keras.Input((10,), name="means")
    spread = keras.Input((20,), name="spread")
    merged = keras.layers.Concatenate()([keras.layers.Dense(16, activation="relu")(means),
                                         keras.layers.Dense(16, activation="relu")(spread)])
    model = keras.Model([means, spread], keras.layers.Dense(2)(merged))
    return fit(model, data, epochs=15, x=named(data.x))


class ResidualMLP(keras.Model):
    """A subclassed model (no symbolic inputs until tunekit wraps it): a residual MLP."""

    def __init__(self, width: int = 32, classes: int = 2) -> None:
        super().__init__()
        self.stem = keras.layers.Dense(width, activation="relu")
        self.block = keras.layers.Dense(width)
        self.head = keras.layers.Dense(classes)

    def call(self, x: Any) -> Any:
        h = self.stem(x)
        return self.head(tf.nn.relu(h + self.block(h)))


def subclassed(data: Split) -> Any:
    keras.utils.set_random_seed(0)
    model = ResidualMLP()
    model(data.x[:2])
    return fit(model, data, epochs=15)


def conv1d(data: Split) -> Any:
    """Two Conv1D layers over the rows of a digit, global average pooling, a Dense head."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8)),
                              keras.layers.Conv1D(32, 3, padding="same", activation="relu"),
                              keras.layers.Conv1D(32, 3, padding="same", activation="relu"),
                              keras.layers.GlobalAveragePooling1D(),
                              keras.layers.Dense(10)])
    return fit(model, data, epochs=25)


def raw_features(data: Split) -> Any:
    """An MLP that takes the raw wine features: trained on standardised ones, the standardisation
    then folded into its first layer (what a long training on raw features converges to), so
    weights on the features below 1 are ~1e5 times those on the 1e4-1e5 ones."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((13,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(3)])
    mean, std = data.x.mean(0), data.x.std(0)
    fit(model, data, epochs=30, x=(data.x - mean) / std)
    kernel, bias = model.layers[0].get_weights()
    model.layers[0].set_weights([kernel / std[:, None], bias - (mean / std) @ kernel])
    return model


def batches(x: Any, y: np.ndarray | None = None, size: int = 32) -> list[Any]:
    """``x`` (an array or a dict of arrays) cut into batches, paired with labels if given."""
    out = []
    for start in range(0, len(y) if y is not None else _length(x), size):
        part = ({k: v[start:start + size] for k, v in x.items()} if isinstance(x, dict)
                else x[start:start + size])
        out.append(part if y is None else (part, y[start:start + size]))
    return out


def _length(x: Any) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def accuracy(predictions: Any, labels: np.ndarray) -> float:
    return float((np.argmax(np.asarray(predictions), 1) == labels).mean())
