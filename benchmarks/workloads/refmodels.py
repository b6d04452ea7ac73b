"""Reference workloads of the benchmarks: model definitions in code, random or seeded weights,
no downloads. Importable by tunekit's environment and by the peer tools' (numpy, plus torch or
tensorflow for the model asked for), so both sides of a comparison run the same weights.

- ``build_r2``: a ResNet-18 (BasicBlock [2, 2, 2, 2], 1000 classes), random init;
- ``build_r3``: a BERT-mini-like encoder (4 layers, hidden 256, 4 heads, FFN 1024, seq 128),
  random init, with explicit ``nn.Linear`` so every GEMM can be quantized; ``r3_input``;
- ``build_keras_r1``: the Keras twin of the digits CNN of ``examples/digits_pytorch``;
- ``ContentionMeter``: the share of the machine's CPU other processes used while timing.
"""
import os
import random
import time

import numpy as np

SEED = 0


def set_seeds(seed=SEED):
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
        torch.manual_seed(seed)
    except ImportError:
        pass


def _torch():
    import torch
    return torch


# ---- R2
def build_r2(num_classes=1000):
    import torch.nn as nn
    from resnet_blocks import BasicBlock

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cfg = [(64, 1), (128, 2), (256, 2), (512, 2)]
            layers, inp = [], 64
            for out, s in cfg:
                layers.append(nn.Sequential(BasicBlock(inp, out, s), BasicBlock(out, out, 1)))
                inp = out
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.flatten(self.avgpool(x)))

    set_seeds()
    return ResNet18().eval()


R3_CFG = dict(vocab=30522, hidden=256, layers=4, heads=4, ffn=1024, seq=128, num_labels=2)


def build_r3(**over):
    import math
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    c = dict(R3_CFG, **over)
    H, A = c["hidden"], c["heads"]
    Dh = H // A

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = nn.Linear(H, H)
            self.k = nn.Linear(H, H)
            self.v = nn.Linear(H, H)
            self.o = nn.Linear(H, H)
            self.ln1 = nn.LayerNorm(H)
            self.fc1 = nn.Linear(H, c["ffn"])
            self.act = nn.GELU()
            self.fc2 = nn.Linear(c["ffn"], H)
            self.ln2 = nn.LayerNorm(H)

        def forward(self, x):
            B, T = x.size(0), x.size(1)
            q = self.q(x).view(B, T, A, Dh).transpose(1, 2)
            k = self.k(x).view(B, T, A, Dh).transpose(1, 2)
            v = self.v(x).view(B, T, A, Dh).transpose(1, 2)
            att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(Dh))
            att = F.softmax(att, dim=-1)
            ctx = torch.matmul(att, v).transpose(1, 2).reshape(B, T, H)
            x = self.ln1(x + self.o(ctx))
            return self.ln2(x + self.fc2(self.act(self.fc1(x))))

    class BertLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(c["vocab"], H)
            self.pos = nn.Embedding(c["seq"], H)
            self.ln = nn.LayerNorm(H)
            self.layers = nn.ModuleList([Layer() for _ in range(c["layers"])])
            self.pool = nn.Linear(H, H)
            self.cls = nn.Linear(H, c["num_labels"])
            self.register_buffer("pos_ids", torch.arange(c["seq"]).unsqueeze(0), persistent=False)

        def forward(self, ids):
            x = self.ln(self.tok(ids) + self.pos(self.pos_ids))
            for l in self.layers:
                x = l(x)
            return self.cls(torch.tanh(self.pool(x[:, 0])))

    set_seeds()
    return BertLike().eval()


def r3_input(bs, seed=SEED):
    torch = _torch()
    return torch.randint(0, R3_CFG["vocab"], (bs, R3_CFG["seq"]),
                         generator=torch.Generator().manual_seed(seed))


def build_keras_r1():
    """Keras twin of R1. Mirrors PyTorch defaults so that it trains "the same way":
    weights ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (= torch kaiming_uniform(a=sqrt(5))), same for
    biases,
    BatchNorm momentum 0.9 / epsilon 1e-5 (= torch momentum 0.1, eps 1e-5).
    (With Keras' default BN momentum 0.99 the moving statistics lag after 285 steps: eval top-1
    0.856.)"""
    import tensorflow as tf
    L = tf.keras.layers
    init = tf.keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in",
                                                 distribution="uniform", seed=SEED)

    def binit(fan_in, k):
        b = 1.0 / np.sqrt(fan_in)
        return tf.keras.initializers.RandomUniform(-b, b, seed=SEED + k)

    inp = tf.keras.Input((16, 16, 1), name="x")
    x = inp
    cin = 1
    for i, (ch, pool) in enumerate([(16, False), (32, True), (64, True)]):
        x = L.Conv2D(ch, 3, padding="same", name=f"conv{i+1}", kernel_initializer=init,
                     bias_initializer=binit(9 * cin, i))(x)
        x = L.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"bn{i+1}")(x)
        x = L.ReLU(name=f"relu{i+1}")(x)
        if pool:
            x = L.MaxPooling2D(2, name=f"pool{i+1}")(x)
        cin = ch
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(128, activation="relu", name="fc1", kernel_initializer=init,
                bias_initializer=binit(1024, 10))(x)
    out = L.Dense(10, name="fc2", kernel_initializer=init, bias_initializer=binit(128, 11))(x)
    return tf.keras.Model(inp, out, name="digits_cnn")


class ContentionMeter:
    """Fraction of total machine CPU used by OTHER processes between start() and stop().

    foreign = (busy CPU time of the whole box - CPU time of this process incl. threads)
    / (wall * ncpu). Values above ~0.05 mean another process competed with the benchmark.
    """

    def _read(self):
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(v) - v[3] - v[4]) / hz
        t = os.times()
        return busy, t.user + t.system, time.time()

    def start(self):
        self.s = self._read()
        return self

    def stop(self):
        b1, o1, w1 = self._read()
        b0, o0, w0 = self.s
        ncpu = os.cpu_count() or 1
        wall = max(w1 - w0, 1e-9)
        foreign = max(0.0, (b1 - b0) - (o1 - o0)) / (wall * ncpu)
        return {"wall_s": round(wall, 1), "foreign_cpu_frac": round(foreign, 3),
                "own_cpu_frac": round((o1 - o0) / (wall * ncpu), 3)}
