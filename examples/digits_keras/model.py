"""The digits CNN in Keras, its data split, and a factory that trains it once.

The twin of ``examples/digits_pytorch`` (and of the peer workload R1's Keras version): the same
split of scikit-learn's bundled digits, the same layers, trained the same way (Adam 1e-3, batch
64, 15 epochs, PyTorch-like initialisation and BatchNorm momentum so both train alike).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow reads it at its first import

SEED = 0
N_TRAIN = 1200
N_CALIB = 100
CACHE_FILE = "digits_cnn.keras"


@dataclass(frozen=True)
class DigitsSplit:
    """NHWC float32 images in [0, 1] at 16×16 and int64 labels, for each part of the split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_calib: np.ndarray
    y_calib: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray


@functools.lru_cache(maxsize=1)
def digits_data() -> DigitsSplit:
    """load_digits /16, bilinear 8×8 → 16×16; 1,200 train / 597 eval; 100 calibration images
    drawn (seed 1) from the training part. Channels last, as Keras convolutions expect."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = digits.images.astype(np.float32) / 16.0
    images = np.stack([zoom(image, 2, order=1) for image in small]).astype(np.float32)[..., None]
    labels = digits.target.astype(np.int64)
    order = np.random.RandomState(SEED).permutation(len(labels))
    train, held_out = order[:N_TRAIN], order[N_TRAIN:]
    calib = np.random.RandomState(SEED + 1).choice(N_TRAIN, N_CALIB, replace=False)
    return DigitsSplit(x_train=images[train], y_train=labels[train],
                       x_calib=images[train][calib], y_calib=labels[train][calib],
                       x_eval=images[held_out], y_eval=labels[held_out])


def build() -> Any:
    """Three conv-BN-ReLU blocks (16, 32, 64 channels; 2×2 max-pool after the last two) and two
    Dense layers, with PyTorch's default initialisation and BatchNorm settings."""
    import tensorflow as tf

    layers = tf.keras.layers
    init = tf.keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform", seed=SEED)

    def bias_init(fan_in: int, k: int) -> Any:
        bound = 1.0 / np.sqrt(fan_in)
        return tf.keras.initializers.RandomUniform(-bound, bound, seed=SEED + k)

    inputs = tf.keras.Input((16, 16, 1), name="x")
    x, channels_in = inputs, 1
    for i, (channels, pool) in enumerate([(16, False), (32, True), (64, True)]):
        x = layers.Conv2D(channels, 3, padding="same", name=f"conv{i + 1}",
                          kernel_initializer=init, bias_initializer=bias_init(9 * channels_in, i))(x)
        x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"bn{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(x)
        if pool:
            x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
        channels_in = channels
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="fc1", kernel_initializer=init,
                     bias_initializer=bias_init(1024, 10))(x)
    outputs = layers.Dense(10, name="fc2", kernel_initializer=init,
                           bias_initializer=bias_init(128, 11))(x)
    return tf.keras.Model(inputs, outputs, name="digits_cnn")


def train(epochs: int = 15, batch_size: int = 64, lr: float = 1e-3) -> Any:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    data = digits_data()
    model = build()
    model.compile(optimizer=tf.keras.optimizers.Adam(lr),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs, shuffle=True,
              verbose=0)
    return model


def cache_path() -> Path:
    """``$TUNEKIT_CACHE_DIR/digits_cnn.keras``, else ``artifacts/`` beside this file."""
    folder = os.environ.get("TUNEKIT_CACHE_DIR") or Path(__file__).resolve().parent / "artifacts"
    return Path(folder) / CACHE_FILE


def load_model() -> Any:
    """The trained FP32 Keras model; trains (about 10 s) and caches it on first use."""
    import tensorflow as tf

    path = cache_path()
    if path.exists():
        return tf.keras.models.load_model(path, compile=False)
    started = time.perf_counter()
    model = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    # written aside then renamed, so a concurrent run never reads half a file
    partial = path.with_name(f"{path.stem}.{os.getpid()}.tmp.keras")
    model.save(partial)
    os.replace(partial, path)
    print(f"trained the Keras digits CNN in {time.perf_counter() - started:.1f} s; cached at {path}")
    return model
