#!/usr/bin/env python3
"""PyTorch reference values for `cnn`'s forward and backward pass.

Builds the network of a `cnn` config (default: the built-in `seed` config,
final ReLU included) as a PyTorch module whose submodules are named like
`cnn`'s layers (conv1, conv2, fc1, fc2, ...), so its `state_dict` has
exactly the tensors `cnn export` writes and `cnn import` reads:
`conv1.weight` [out, in, kh, kw], `conv1.bias`, `fc1.weight` [out, in],
`fc1.bias`. (An `nn.Sequential` would name them `0.weight`, `3.weight`,
...; see crates/trainer/src/safetensors_io.rs for the mapping.)

It draws weights with a fixed torch seed (N(0, std) from the config's init,
biases N(0, 0.1) so that they are tested too), takes a few inputs (real
MNIST test images when --data has them, else uniform random values in
[0, 1]), computes the logits, the mean softmax cross-entropy and every
parameter's gradient (and the input's), and writes them all to one
safetensors file (f32):

    <param>               the weights (conv1.weight, ...)
    input                 [N, C, H, W]
    labels                [N] (class indices as f32)
    logits                [N, classes]
    loss                  [1]
    grad.<param>          d(loss)/d(param)
    grad.input            d(loss)/d(input)

When the config ends in a ReLU, the weights are redrawn (next seed) until
the logits hold both zeros and positive values, so the test exercises the
final ReLU's mask.

Networks with batch norm or dropout run in training mode, as `cnn`'s
training step does (`Network::forward_train`): batch norm normalises by the
batch's statistics and updates its running statistics, dropout draws its
masks from `cnn`'s random stream (xoshiro256** seeded by SplitMix64 from
the seed in the metadata `noise_seed`, one uniform draw per value, layers
in order; a value is kept when the draw is at least p), rewritten below so
both sides drop the same values. Batch norm's γ, β and running statistics
are drawn at random too (so loading them is tested); the file then also holds

    after.<bn>.running_mean, after.<bn>.running_var, after.<bn>.num_batches_tracked
                          the running statistics after the training forward
    logits_eval           the logits in evaluation mode, with those statistics

(`num_batches_tracked` is int64, as in PyTorch's state_dict.)

The Rust test `crates/trainer-cli/tests/pytorch_reference.rs` loads the
weights through `cnn import`'s code and compares. Regenerate the committed
fixture (a reduced seed network, same layer kinds) with

    python3 xtask/pytorch/reference.py \\
        --config crates/trainer-cli/tests/fixtures/pytorch_small.toml \\
        --data data/mnist --out crates/trainer-cli/tests/fixtures/pytorch_seed.safetensors

and the full seed network with `--config crates/trainer/configs/seed.toml`.
Needs torch, numpy and safetensors (pip install safetensors); CI does not run it.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from seed_net import read_idx  # noqa: E402  (one IDX reader for both scripts)
SEED_TOML = os.path.join(HERE, "..", "..", "crates", "trainer-cli", "configs", "seed.toml")

PREFIX = {"conv2d": "conv", "linear": "fc", "avg_pool2d": "pool", "max_pool2d": "pool",
          "relu": "relu", "sigmoid": "sigmoid", "flatten": "flatten", "dropout": "dropout",
          "batch_norm2d": "bn", "batch_norm1d": "bn"}
MASK64 = (1 << 64) - 1


class CnnRng:
    """cnn's tensor::Rng: xoshiro256** seeded through SplitMix64."""

    def __init__(self, seed):
        self.s = []
        sm = seed
        for _ in range(4):
            sm = (sm + 0x9E3779B97F4A7C15) & MASK64
            z = sm
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            self.s.append(z ^ (z >> 31))

    def next_u64(self):
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & MASK64
        result = (rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))


class CnnDropout:
    """Inverted dropout with cnn's mask: value i kept when its draw is >= p."""

    def __init__(self, p):
        self.p = p
        self.rng = None  # set before each training forward

    def __call__(self, x):
        if self.rng is None:
            return x
        keep = [self.rng.uniform() >= self.p for _ in range(x.numel())]
        mask = torch.tensor(keep, dtype=x.dtype).reshape(x.shape)
        return x * mask / (1.0 - self.p)


class Net(nn.Module):
    """The layers of a `cnn` network config, named as `cnn` names them."""

    def __init__(self, net_cfg):
        super().__init__()
        self.steps = []  # (name, callable) in order
        counts = {}
        for layer in net_cfg["layers"]:
            kind = layer["kind"]
            prefix = PREFIX[kind]
            counts[prefix] = counts.get(prefix, 0) + 1
            name = layer.get("name", f"{prefix}{counts[prefix]}")
            if kind == "conv2d":
                m = nn.Conv2d(layer["in_channels"], layer["out_channels"], layer["kernel"],
                              stride=layer.get("stride", 1), padding=layer.get("pad", 0))
                setattr(self, name, m)  # registers conv1.weight, conv1.bias
                self.steps.append((name, m))
            elif kind == "linear":
                m = nn.Linear(layer["in_features"], layer["out_features"])
                setattr(self, name, m)
                self.steps.append((name, m))
            elif kind == "relu":
                self.steps.append((name, F.relu))
            elif kind == "sigmoid":
                self.steps.append((name, torch.sigmoid))
            elif kind in ("avg_pool2d", "max_pool2d"):
                k, s, p = layer["kernel"], layer.get("stride") or layer["kernel"], layer.get("pad", 0)
                if kind == "avg_pool2d":
                    # cnn's average divides by the whole window (zeros of the padding included).
                    self.steps.append((name, lambda x, k=k, s=s, p=p: F.avg_pool2d(x, k, s, p, count_include_pad=True)))
                else:
                    self.steps.append((name, lambda x, k=k, s=s, p=p: F.max_pool2d(x, k, s, p)))
            elif kind == "flatten":
                self.steps.append((name, lambda x: x.flatten(1)))
            elif kind in ("batch_norm2d", "batch_norm1d"):
                cls = nn.BatchNorm2d if kind == "batch_norm2d" else nn.BatchNorm1d
                m = cls(layer["num_features"], eps=layer.get("eps", 1e-5), momentum=layer.get("momentum", 0.1))
                setattr(self, name, m)  # weight, bias, running_mean, running_var, num_batches_tracked
                self.steps.append((name, m))
            elif kind == "dropout":
                self.steps.append((name, CnnDropout(layer["p"])))
            else:
                raise ValueError(f"layer kind {kind} not supported")
        self.inits = {}
        for layer, (name, m) in zip(net_cfg["layers"], self.steps):
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                self.inits[name] = layer.get("init", {"kind": "normal", "std": 0.1})

    def noisy(self):
        """Whether the network has layers that train differently from how they evaluate."""
        return any(isinstance(f, (CnnDropout, nn.modules.batchnorm._BatchNorm)) for _, f in self.steps)

    def set_noise(self, rng):
        for _, f in self.steps:
            if isinstance(f, CnnDropout):
                f.rng = rng

    def forward(self, x):
        for _, f in self.steps:
            x = f(x)
        return x

    def draw(self, gen):
        with torch.no_grad():
            for name, init in self.inits.items():
                m = getattr(self, name)
                w = m.weight
                fan_in = w[0].numel()
                fan_out = w.shape[0] * (w[0, 0].numel() if w.dim() == 4 else 1)
                kind = init.get("kind", "normal")
                if kind == "normal":
                    std = init["std"]
                elif kind in ("he", "he_normal", "kaiming"):
                    std = (2.0 / fan_in) ** 0.5
                elif kind in ("xavier", "glorot", "xavier_normal"):
                    std = (2.0 / (fan_in + fan_out)) ** 0.5
                else:
                    std = 0.1
                w.copy_(torch.randn(w.shape, generator=gen) * std)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            for _, m in self.steps:
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    c = m.num_features
                    m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                    m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                    m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                    m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                    m.num_batches_tracked.fill_(3)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=SEED_TOML, help="a cnn config TOML (default: the seed config)")
    p.add_argument("--data", default=None, help="folder with t10k-* IDX files (default: random inputs)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-seed", type=int, default=7, help="seed of cnn's random stream for dropout masks")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    with open(a.config, "rb") as f:
        cfg = tomllib.load(f)
    net_cfg = cfg["network"]
    loss = net_cfg.get("loss", {"kind": "softmax_cross_entropy"})["kind"]
    if loss != "softmax_cross_entropy":
        sys.exit(f"only softmax_cross_entropy is supported, the config has {loss}")
    c, h, w = net_cfg["input"]
    torch.set_default_dtype(torch.float64)  # the reference in double precision, stored as f32
    model = Net(net_cfg)
    gen = torch.Generator().manual_seed(a.seed)

    if a.data and os.path.exists(os.path.join(a.data, "t10k-labels-idx1-ubyte.gz")) or \
            a.data and os.path.exists(os.path.join(a.data, "t10k-labels-idx1-ubyte")):
        images = read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte"))[:a.batch]
        labels = read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte"))[:a.batch]
        x = torch.from_numpy(images.astype(np.float64) / 255.0).reshape(a.batch, c, h, w)
        y = torch.from_numpy(labels.astype(np.int64))
        source = f"the first {a.batch} test images of {a.data}"
    else:
        x = torch.rand((a.batch, c, h, w), generator=gen)
        y = torch.randint(0, 10, (a.batch,), generator=gen)
        source = "uniform random inputs in [0, 1]"
    # The inputs as f32 values exactly, as the Rust side reads them.
    x = x.float().double()

    final_relu = net_cfg["layers"][-1]["kind"] == "relu"
    for attempt in range(100):
        model.draw(gen)
        # Round the weights to f32 so both sides start from the same values.
        with torch.no_grad():
            for prm in model.parameters():
                prm.copy_(prm.float().double())
        model.eval()
        with torch.no_grad():
            logits = model(x)
        zeros, positive = (logits == 0).sum().item(), (logits > 0).sum().item()
        if not final_relu or (zeros >= logits.numel() // 5 and positive >= logits.numel() // 5
                              and all((logits[i] > 0).any() for i in range(len(y)))):
            break
    else:
        sys.exit("could not draw weights giving both zero and positive logits")

    # The state before the training forward (which updates batch norm's running statistics).
    state = {name: t.detach().clone() for name, t in model.state_dict().items()}
    noisy = model.noisy()
    model.train()
    model.set_noise(CnnRng(a.noise_seed) if noisy else None)
    xg = x.clone().requires_grad_(True)
    model.zero_grad()
    logits = model(xg)
    loss = F.cross_entropy(logits, y)
    loss.backward()

    def stored(name, t):
        # Counts stay int64, as PyTorch keeps them; everything else as f32.
        return t.contiguous() if name.endswith("num_batches_tracked") else t.detach().float().contiguous()

    out = {name: stored(name, t) for name, t in state.items()}
    if noisy:
        for name, t in model.state_dict().items():
            if "running_" in name or name.endswith("num_batches_tracked"):
                out[f"after.{name}"] = stored(name, t)
        model.eval()
        model.set_noise(None)
        with torch.no_grad():
            out["logits_eval"] = model(x).float().contiguous()
    out["input"] = x.float().contiguous()
    out["labels"] = y.float()
    out["logits"] = logits.detach().float().contiguous()
    out["loss"] = loss.detach().reshape(1).float()
    for name, prm in model.named_parameters():
        out[f"grad.{name}"] = prm.grad.float().contiguous()
    out["grad.input"] = xg.grad.float().contiguous()
    meta = {"format": "pt", "source": source, "config": os.path.basename(a.config),
            "torch": torch.__version__, "seed": str(a.seed), "draws": str(attempt + 1)}
    if noisy:
        meta["noise_seed"] = str(a.noise_seed)
    save_file(out, a.out, metadata=meta)
    n = sum(t.numel() for t in model.parameters())
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes): {n} parameters, inputs: {source}, "
          f"loss {loss.item():.6f}, logits: {(logits == 0).sum().item()} zero / {(logits > 0).sum().item()} positive "
          f"of {logits.numel()} (weights drawn {attempt + 1} times)")


if __name__ == "__main__":
    main()
