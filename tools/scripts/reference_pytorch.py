#!/usr/bin/env python3
"""The issue's reference recipe as a plain PyTorch loop, to compare against `fma-train` seed for seed on one machine.

ConvNeXt-atto (depths 2,2,6,2; dims 40,80,160,320; layer scale 1e-6; no drop path), global average pool, LayerNorm,
one independent linear head per level, summed cross-entropy; AdamW(model.parameters(), lr 1e-3, weight decay 0.05),
CosineAnnealingLR(T_max=epochs, eta_min=1e-6) stepped per epoch; batch 64 shuffled, last partial batch kept; 112 px
bilinear resize (PIL), random horizontal/vertical flips and 90-degree turns; ImageNet mean/std. Init as timm:
trunc_normal(std .02), zero biases. Images are decoded and resized once and kept in memory (as fma-train's cache does).

Usage: python3 tools/scripts/reference_pytorch.py --train DIR --val DIR --seed 0 [--epochs 8] [--threads 2] [--json F]
Needs Debian's python3-torch (1.13) and python3-pil; nothing from PyPI.
"""
import argparse
import json
import os
import platform
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXtAtto(nn.Module):
    def __init__(self, level_sizes, depths=(2, 2, 6, 2), dims=(40, 80, 160, 320)):
        super().__init__()
        layers = [nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=1e-6)]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            if i > 0:
                layers += [LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, stride=2)]
            layers += [Block(dim) for _ in range(depth)]
        self.features = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.heads = nn.ModuleList(nn.Linear(dims[-1], n) for n in level_sizes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        f = self.norm(self.features(x).mean((2, 3)))
        return [h(f) for h in self.heads]


def scan(root, classes=None):
    """(path, [index per level]) for root/L1/L2/.../leaf/*; classes per level sorted by name (ordinal)."""
    items = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            if f.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")):
                rel = os.path.relpath(dirpath, root).split(os.sep)
                items.append((os.path.join(dirpath, f), rel))
    depth = len(items[0][1])
    if classes is None:
        classes = [sorted({"/".join(r[: l + 1]) for _, r in items}) for l in range(depth)]
    index = [{c: i for i, c in enumerate(level)} for level in classes]
    return [(p, [index[l]["/".join(r[: l + 1])] for l in range(depth)]) for p, r in items], classes


def load(items, size):
    x = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)) for p, _ in items])
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.tensor([y for _, y in items])


def augment(x, gen):
    out = []
    for img in x:
        if torch.rand(1, generator=gen).item() < 0.5:
            img = img.flip(2)
        if torch.rand(1, generator=gen).item() < 0.5:
            img = img.flip(1)
        img = torch.rot90(img, int(torch.randint(4, (1,), generator=gen).item()), (1, 2))
        out.append(img)
    return torch.stack(out)


def normalise(x):
    return (x.float() / 255.0 - MEAN) / STD


def evaluate(model, x, y, batch=128):
    model.eval()
    correct = torch.zeros(y.shape[1])
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs = model(normalise(x[i:i + batch]))
            for l, o in enumerate(outs):
                correct[l] += (o.argmax(1) == y[i:i + batch, l]).sum()
    model.train()
    return (correct / len(x)).tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    train_items, classes = scan(a.train)
    val_items, _ = scan(a.val, classes)
    t0 = time.time()
    xt, yt = load(train_items, a.size)
    xv, yv = load(val_items, a.size)
    print(f"loaded {len(xt)} train / {len(xv)} val images in {time.time() - t0:.0f} s; levels {[len(c) for c in classes]}", flush=True)

    model = ConvNeXtAtto([len(c) for c in classes])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs, eta_min=1e-6)
    gen = torch.Generator().manual_seed(a.seed)
    history = []
    start = time.time()
    for epoch in range(a.epochs):
        e0 = time.time()
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(order), a.batch):
            idx = order[i:i + a.batch]
            outs = model(normalise(augment(xt[idx], gen)))
            loss = sum(F.cross_entropy(o, yt[idx, l]) for l, o in enumerate(outs))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        acc = evaluate(model, xv, yv)
        rate = len(xt) / (time.time() - e0)
        history.append({"epoch": epoch + 1, "loss": total / len(xt), "val_top1": acc, "images_per_s": rate})
        print(f"epoch {epoch + 1}/{a.epochs} loss {total / len(xt):.4f} val top-1 {[round(v * 100, 1) for v in acc]} {rate:.1f} img/s", flush=True)

    result = {
        "recipe": "convnext_atto 112 independent ce AdamW 1e-3/0.05 cosine-per-epoch batch 64 flips+rot90",
        "seed": a.seed, "epochs": a.epochs, "threads": a.threads, "train_images": len(xt), "val_images": len(xv),
        "val_top1": history[-1]["val_top1"], "train_seconds": time.time() - start, "history": history,
        "torch": torch.__version__, "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
        "blas": torch.__config__.show(),
    }
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps({k: result[k] for k in ("seed", "val_top1", "train_seconds")}))


if __name__ == "__main__":
    sys.exit(main())
