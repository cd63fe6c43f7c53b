#!/usr/bin/env python3
"""A plain PyTorch implementation of the trainer's reference recipe, to compare fma-train against.

ConvNeXt (timm layout) + one linear head per level, sum of per-level cross-entropy, AdamW, cosine
schedule per step, flips and 90-degree turns, images decoded and resized once then kept in memory.
Needs Debian's python3-torch (1.13): `apt-get install python3-torch python3-pil`, run with /usr/bin/python3.

    /usr/bin/python3 tools/scripts/reference_pytorch.py --data ../shared/datasets/defects --epochs 8
"""
import argparse, json, math, os, random, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

DIMS = {"atto": ([2, 2, 6, 2], [40, 80, 160, 320]), "femto": ([2, 2, 6, 2], [48, 96, 192, 384]),
        "tiny": ([3, 3, 9, 3], [96, 192, 384, 768])}
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv_dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.fc1 = nn.Linear(c, 4 * c)
        self.fc2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.full((c,), 1e-6))

    def forward(self, x):
        y = self.conv_dw(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class HierConvNeXt(nn.Module):
    def __init__(self, variant, classes, init):
        super().__init__()
        depths, dims = DIMS[variant]
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))
        stages = []
        for s in range(4):
            layers = [] if s == 0 else [LayerNorm2d(dims[s - 1], eps=1e-6), nn.Conv2d(dims[s - 1], dims[s], 2, 2)]
            layers += [Block(dims[s]) for _ in range(depths[s])]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.heads = nn.ModuleList(nn.Linear(dims[-1], n) for n in classes)
        if init == "timm":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        f = self.norm(self.stages(self.stem(x)).mean((2, 3)))
        return [h(f) for h in self.heads]


def load_split(root, size, resize):
    paths, labels = [], []
    for l1 in sorted(os.listdir(root)):
        for l2 in sorted(os.listdir(os.path.join(root, l1))):
            for l3 in sorted(os.listdir(os.path.join(root, l1, l2))):
                d = os.path.join(root, l1, l2, l3)
                for f in sorted(os.listdir(d)):
                    paths.append(os.path.join(d, f)); labels.append((l1, f"{l1}/{l2}", f"{l1}/{l2}/{l3}"))
    mode = {"bilinear": Image.BILINEAR, "area": Image.BOX, "bicubic": Image.BICUBIC}[resize]
    imgs = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), mode)) for p in paths])
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(), labels


def to_input(u8):
    x = u8.float() / 255.0
    return (x - torch.from_numpy(MEAN)[:, None, None]) / torch.from_numpy(STD)[:, None, None]


def augment(u8, gen):
    out = u8.clone()
    for i in range(out.shape[0]):
        x = out[i]
        if torch.rand(1, generator=gen) < 0.5: x = x.flip(2)
        if torch.rand(1, generator=gen) < 0.5: x = x.flip(1)
        x = torch.rot90(x, int(torch.randint(4, (1,), generator=gen)), (1, 2))
        out[i] = x
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="atto")
    ap.add_argument("--img-size", type=int, default=112)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup-epochs", type=float, default=0)
    ap.add_argument("--wd-1d", action="store_true", help="also decay 1-D parameters (norms, biases, gamma)")
    ap.add_argument("--init", default="timm", choices=["timm", "default"])
    ap.add_argument("--resize", default="bilinear", choices=["bilinear", "area", "bicubic"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.manual_seed(a.seed); random.seed(a.seed); np.random.seed(a.seed)
    torch.set_num_threads(a.threads)

    t0 = time.time()
    xtr, ltr = load_split(os.path.join(a.data, "train"), a.img_size, a.resize)
    xva, lva = load_split(os.path.join(a.data, "val"), a.img_size, a.resize)
    names = [sorted({l[k] for l in ltr}) for k in range(3)]
    ytr = torch.tensor([[names[k].index(l[k]) for k in range(3)] for l in ltr])
    yva = torch.tensor([[names[k].index(l[k]) for k in range(3)] for l in lva])
    print(f"loaded {len(ltr)} train / {len(lva)} val in {time.time() - t0:.0f}s; classes {[len(n) for n in names]}", flush=True)

    model = HierConvNeXt(a.model, [len(n) for n in names], a.init)
    if a.channels_last: model = model.to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1 or a.wd_1d]
    no_decay = [p for p in model.parameters() if not (p.ndim > 1 or a.wd_1d)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}], lr=a.lr)
    steps_per_epoch = math.ceil(len(ltr) / a.batch)
    total, warm = steps_per_epoch * a.epochs, int(steps_per_epoch * a.warmup_epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                              0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    gen = torch.Generator().manual_seed(a.seed)
    history = []
    for epoch in range(a.epochs):
        model.train(); te = time.time(); losses = []
        perm = torch.randperm(len(ltr), generator=gen)
        for b in range(steps_per_epoch):
            idx = perm[b * a.batch:(b + 1) * a.batch]
            x = to_input(augment(xtr[idx], gen))
            if a.channels_last: x = x.contiguous(memory_format=torch.channels_last)
            outs = model(x)
            loss = sum(F.cross_entropy(o, ytr[idx, k]) for k, o in enumerate(outs))
            opt.zero_grad(); loss.backward(); opt.step(); sched.step(); losses.append(loss.item())
        ips = len(ltr) / (time.time() - te)
        top1, recall = evaluate(model, xva, yva, names)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "images_per_sec": ips, "val_top1": top1})
        print(f"epoch {epoch + 1}: loss {np.mean(losses):.3f} {ips:.0f} img/s val top1 {[round(t * 100, 1) for t in top1]}", flush=True)
    print("per-leaf val recall:", json.dumps({k: round(v, 2) for k, v in recall.items()}))
    print(f"total {time.time() - t0:.0f}s")
    if a.json:
        json.dump({"args": vars(a), "history": history, "leaf_recall": recall}, open(a.json, "w"), indent=1)


@torch.no_grad()
def evaluate(model, x, y, names):
    model.eval(); preds = [[] for _ in range(3)]
    for i in range(0, len(x), 128):
        for k, o in enumerate(model(to_input(x[i:i + 128]))): preds[k].append(o.argmax(1))
    preds = [torch.cat(p) for p in preds]
    top1 = [float((preds[k] == y[:, k]).float().mean()) for k in range(3)]
    recall = {n: float((preds[2][y[:, 2] == j] == j).float().mean()) for j, n in enumerate(names[2])}
    return top1, recall


if __name__ == "__main__":
    main()
