#!/usr/bin/env python3
"""The seed network of the post in PyTorch, for comparison with `cnn`.

Same network, initialisation (N(0, std^2) weights, zero biases), input
scaling (v / 255), optimizer (SGD, lr 0.01, momentum 0.9, weight decay 1e-4:
PyTorch's SGD update d = mu*d + (g + wd*W); W -= lr*d is exactly the post's),
batch 100 and per-epoch figures as `cnn train`. Needs torch and numpy; CI
does not run it. Usage:

    python3 xtask/pytorch/seed_net.py --data data/mnist --epochs 1 --threads 2
"""
import argparse
import gzip
import os
import struct
import time

import numpy as np
import torch
from torch import nn


def read_idx(path):
    for name in (path, path + ".gz"):
        if os.path.exists(name):
            with open(name, "rb") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            magic, = struct.unpack(">I", raw[:4])
            dims = magic & 0xFF
            shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
            return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    raise FileNotFoundError(path)


def load(data, prefix):
    x = read_idx(os.path.join(data, f"{prefix}-images-idx3-ubyte"))
    y = read_idx(os.path.join(data, f"{prefix}-labels-idx1-ubyte"))
    return torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def seed_net(final_relu=True):
    layers = [
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10),
    ]
    if final_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def evaluate(model, x, y, batch):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(x[i:i + batch])
            loss += nn.functional.cross_entropy(out, y[i:i + batch], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/mnist")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--init-std", type=float, default=0.1)
    p.add_argument("--no-final-relu", action="store_true")
    p.add_argument("--train-only", action="store_true", help="skip evaluation (timing the training pass)")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    model = seed_net(not a.no_final_relu)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, a.init_std)
            nn.init.zeros_(m.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    print("epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds", flush=True)
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(len(xtr))
        t0 = time.perf_counter()
        run_loss, run_correct = 0.0, 0
        for i in range(0, len(xtr), a.batch):
            idx = perm[i:i + a.batch]
            out = model(xtr[idx])
            loss = nn.functional.cross_entropy(out, ytr[idx])
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            run_loss += loss.item() * len(idx)
            run_correct += (out.argmax(1) == ytr[idx]).sum().item()
        t1 = time.perf_counter()
        if a.train_only:
            print(f"{epoch},{run_loss / len(xtr):.6f},{100 * run_correct / len(xtr):.4f},,,{t1 - t0:.3f},", flush=True)
            continue
        tl, ta = evaluate(model, xte, yte, 1000)
        t2 = time.perf_counter()
        print(f"{epoch},{run_loss / len(xtr):.6f},{100 * run_correct / len(xtr):.4f},{tl:.6f},{100 * ta:.4f},{t1 - t0:.3f},{t2 - t1:.3f}", flush=True)


if __name__ == "__main__":
    main()
