#!/usr/bin/env python3
"""PyTorch reference values for `cnn`'s forward and backward pass.

Builds the network of a `cnn` config (default: the built-in `seed` config,
final ReLU included) as a PyTorch module whose submodules are named like
`cnn`'s layers (conv1, conv2, fc1, fc2, ...), so its `state_dict` has
exactly the tensors `cnn export` writes and `cnn import` reads:
`conv1.weight` [out, in, kh, kw], `conv1.bias`, `fc1.weight` [out, in],
`fc1.bias`. (An `nn.Sequential` would name them `0.weight`, `3.weight`,
...; see crates/trainer-cli/src/safetensors_io.rs for the mapping.)

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

The Rust test `crates/trainer-cli/tests/pytorch_reference.rs` loads the
weights through `cnn import`'s code and compares. Regenerate the committed
fixture (a reduced seed network, same layer kinds) with

    python3 xtask/pytorch/reference.py \\
        --config crates/trainer-cli/tests/fixtures/pytorch_small.toml \\
        --data data/mnist --out crates/trainer-cli/tests/fixtures/pytorch_seed.safetensors

and the full seed network with `--config crates/trainer-cli/configs/seed.toml`.
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
          "relu": "relu", "sigmoid": "sigmoid", "flatten": "flatten"}


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
            else:
                raise ValueError(f"layer kind {kind} not supported")
        self.inits = {}
        for layer, (name, m) in zip(net_cfg["layers"], self.steps):
            if isinstance(m, nn.Module):
                self.inits[name] = layer.get("init", {"kind": "normal", "std": 0.1})

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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=SEED_TOML, help="a cnn config TOML (default: the seed config)")
    p.add_argument("--data", default=None, help="folder with t10k-* IDX files (default: random inputs)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
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
        logits = model(x)
        zeros, positive = (logits == 0).sum().item(), (logits > 0).sum().item()
        if not final_relu or (zeros >= logits.numel() // 5 and positive >= logits.numel() // 5
                              and all((logits[i] > 0).any() for i in range(len(y)))):
            break
    else:
        sys.exit("could not draw weights giving both zero and positive logits")

    xg = x.clone().requires_grad_(True)
    model.zero_grad()
    logits = model(xg)
    loss = F.cross_entropy(logits, y)
    loss.backward()

    out = {name: t.detach().float().contiguous() for name, t in model.state_dict().items()}
    out["input"] = x.float().contiguous()
    out["labels"] = y.float()
    out["logits"] = logits.detach().float().contiguous()
    out["loss"] = loss.detach().reshape(1).float()
    for name, prm in model.named_parameters():
        out[f"grad.{name}"] = prm.grad.float().contiguous()
    out["grad.input"] = xg.grad.float().contiguous()
    meta = {"format": "pt", "source": source, "config": os.path.basename(a.config),
            "torch": torch.__version__, "seed": str(a.seed), "draws": str(attempt + 1)}
    save_file(out, a.out, metadata=meta)
    n = sum(t.numel() for k, t in model.state_dict().items())
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes): {n} parameters, inputs: {source}, "
          f"loss {loss.item():.6f}, logits: {(logits == 0).sum().item()} zero / {(logits > 0).sum().item()} positive "
          f"of {logits.numel()} (weights drawn {attempt + 1} times)")


if __name__ == "__main__":
    main()
