"""Small real torch models and data for the PyTorch adaptor tests.

The digits CNN and its data are copies of the R1 reference workload (peers/refwork.py), which
tests may not import. Training it (15 epochs, ~7 s on 2 cores) happens once per machine: the
state_dict is cached in pytest's cache folder, keyed by the torch version.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

N_TRAIN = 1200
N_CALIB = 100


class DigitsCNN(nn.Module):
    """R1: three conv+BN+ReLU blocks, two max-pools, two Linear layers; 16×16 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(64)
        self.relu3 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.relu4 = nn.ReLU()
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: Any) -> Any:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.pool1(self.relu2(self.bn2(self.conv2(x))))
        x = self.pool2(self.relu3(self.bn3(self.conv3(x))))
        x = self.flatten(x)
        return self.fc2(self.relu4(self.fc1(x)))


class Block(nn.Module):
    """A ResNet basic block (conv-BN-ReLU, conv-BN, shortcut add, ReLU)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU()

    def forward(self, x: Any) -> Any:
        y = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(y)) + x)


class TinyResNet(nn.Module):
    """R2 in miniature: a stem whose max-pool feeds both a conv and a residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(Block(8), Block(8))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8, 5)

    def forward(self, x: Any) -> Any:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.fc(self.flatten(self.avgpool(self.layer1(x))))


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace ``if x.sum() > 0``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: Any) -> Any:
        x = self.relu(self.conv(x))
        if x.sum() > 0:
            x = x * 1.0
        return self.fc(x.flatten(1))


class Recurrent(nn.Module):
    """LSTM + GRU + Linear head, for dynamic int8."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 12, batch_first=True)
        self.gru = nn.GRU(12, 8, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x: Any) -> Any:
        x, _ = self.lstm(x)
        x, _ = self.gru(x)
        return self.head(x[:, -1])


def digits_arrays() -> dict[str, np.ndarray]:
    """load_digits /16, upsampled 8×8 → 16×16; train 1,200 / eval 597 / calib 100 from train."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    ds = load_digits()
    x = ds.images.astype(np.float32) / 16.0
    x16 = np.stack([zoom(im, 2, order=1) for im in x]).astype(np.float32)[:, None]
    y = ds.target.astype(np.int64)
    perm = np.random.RandomState(0).permutation(len(y))
    train, evaluation = perm[:N_TRAIN], perm[N_TRAIN:]
    calib = np.random.RandomState(1).choice(N_TRAIN, N_CALIB, replace=False)
    return {"x_train": x16[train], "y_train": y[train], "x_calib": x16[train][calib],
            "y_calib": y[train][calib], "x_eval": x16[evaluation], "y_eval": y[evaluation]}


def train_digits(data: dict[str, np.ndarray], epochs: int = 15) -> DigitsCNN:
    """R1's training recipe: Adam 1e-3, batch 64, seed 0."""
    torch.manual_seed(0)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"])
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=generator)
        for i in range(0, len(y), 64):
            index = perm[i:i + 64]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[index]), y[index]).backward()
            optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    return digits_arrays()


@pytest.fixture(scope="session")
def trained_digits_state(digits: dict[str, np.ndarray], pytestconfig: pytest.Config) -> dict:
    cache = getattr(pytestconfig, "cache", None)  # None under -p no:cacheprovider
    if cache is None:
        return train_digits(digits).state_dict()
    path = cache.mkdir("tunekit-digits-cnn") / f"r1-{torch.__version__}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    state = train_digits(digits).state_dict()
    torch.save(state, path)
    return state


@pytest.fixture
def trained_digits(trained_digits_state: dict) -> DigitsCNN:
    model = DigitsCNN()
    model.load_state_dict(trained_digits_state)
    return model.eval()


@pytest.fixture
def digits_model() -> DigitsCNN:
    """Untrained (seeded) digits CNN in eval mode: enough to check structure and closeness."""
    torch.manual_seed(0)
    return DigitsCNN().eval()


@pytest.fixture
def other_digits_model() -> DigitsCNN:
    """The digits CNN with other (seeded) weights: a second model for per-model state checks."""
    torch.manual_seed(1)
    return DigitsCNN().eval()


@pytest.fixture
def calib(digits: dict[str, np.ndarray]) -> list[tuple[Any, Any]]:
    return [(torch.from_numpy(digits["x_calib"]), torch.from_numpy(digits["y_calib"]))]


@pytest.fixture
def eval_data(digits: dict[str, np.ndarray]) -> list[tuple[Any, Any]]:
    x, y = torch.from_numpy(digits["x_eval"]), torch.from_numpy(digits["y_eval"])
    return [(x[i:i + 200], y[i:i + 200]) for i in range(0, len(y), 200)]


@pytest.fixture(scope="session")
def zoo() -> Any:
    """The model classes above (tests take them from here rather than importing conftest)."""
    from types import SimpleNamespace

    return SimpleNamespace(DigitsCNN=DigitsCNN, TinyResNet=TinyResNet, Untraceable=Untraceable,
                           Recurrent=Recurrent)


# -- TensorFlow ------------------------------------------------------------------------------------
def keras_digits_cnn() -> Any:
    """R1 in Keras (the twin in examples/digits_keras), with Keras' default initialisers."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((16, 16, 1), name="x")
    x = inputs
    for i, (channels, pool) in enumerate([(16, False), (32, True), (64, True)]):
        x = layers.Conv2D(channels, 3, padding="same", name=f"conv{i + 1}")(x)
        x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"bn{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(x)
        if pool:
            x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    return tf.keras.Model(inputs, layers.Dense(10, name="fc2")(x), name="digits_cnn")


@pytest.fixture(scope="session")
def tf() -> Any:
    return pytest.importorskip("tensorflow")


@pytest.fixture(scope="session")
def keras_digits(tf: Any, digits: dict[str, np.ndarray], pytestconfig: pytest.Config) -> Any:
    """The Keras digits CNN trained as R1 is (15 epochs, ~10 s), cached in pytest's cache."""
    cache = getattr(pytestconfig, "cache", None)
    path = (cache.mkdir("tunekit-digits-keras") / f"r1-{tf.__version__}.keras"
            if cache is not None else None)
    if path is not None and path.exists():
        return tf.keras.models.load_model(path, compile=False)
    tf.keras.utils.set_random_seed(0)
    model = keras_digits_cnn()
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(nhwc(digits["x_train"]), digits["y_train"], batch_size=64, epochs=15, verbose=0)
    if path is not None:
        model.save(path)
    return model


@pytest.fixture(scope="session")
def keras_other(tf: Any) -> Any:
    """The Keras digits CNN untrained (seeded): a second model for per-model state checks."""
    tf.keras.utils.set_random_seed(1)
    return keras_digits_cnn()


def nhwc(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


@pytest.fixture(scope="session")
def keras_calib(digits: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    x, y = nhwc(digits["x_calib"]), digits["y_calib"]
    return [(x[i:i + 25], y[i:i + 25]) for i in range(0, len(y), 25)]


@pytest.fixture(scope="session")
def keras_eval(digits: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    x, y = nhwc(digits["x_eval"]), digits["y_eval"]
    return [(x[i:i + 200], y[i:i + 200]) for i in range(0, len(y), 200)]


# -- ONNX ------------------------------------------------------------------------------------------
def export_onnx(model: Any, example: Any, path: Any) -> Any:
    """``model`` exported with torch's TorchScript-based exporter (fast; a batch axis)."""
    import onnx

    torch.onnx.export(model.eval(), (example,), str(path), input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    return onnx.load(str(path))


@pytest.fixture(scope="session")
def onnx_digits(trained_digits_state: dict, digits: dict[str, np.ndarray],
                tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The trained digits CNN as an ``onnx.ModelProto`` (Conv ×3, Gemm ×2)."""
    pytest.importorskip("onnxruntime")
    model = DigitsCNN()
    model.load_state_dict(trained_digits_state)
    return export_onnx(model, torch.from_numpy(digits["x_calib"][:2]),
                       tmp_path_factory.mktemp("onnx") / "digits.onnx")


@pytest.fixture(scope="session")
def onnx_other(digits: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The digits CNN with other (seeded) weights as ONNX: a second model for per-model state."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(1)
    return export_onnx(DigitsCNN(), torch.from_numpy(digits["x_calib"][:2]),
                       tmp_path_factory.mktemp("onnx") / "other.onnx")


@pytest.fixture(scope="session")
def onnx_calib(digits: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    x, y = digits["x_calib"], digits["y_calib"]
    return [(x[i:i + 50], y[i:i + 50]) for i in range(0, len(y), 50)]


@pytest.fixture(scope="session")
def onnx_eval(digits: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    x, y = digits["x_eval"], digits["y_eval"]
    return [(x[i:i + 200], y[i:i + 200]) for i in range(0, len(y), 200)]
