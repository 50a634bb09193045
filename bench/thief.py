"""Careful-thief copies for the verification benchmark: prune or fine-tune a stolen encoder.

python bench/thief.py prune SRC.pt DST.pt --amount 0.5
python bench/thief.py finetune SRC.pt DST.pt --data demo --epochs 5
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from sleuth.data import adapt, load_images
from sleuth.data.augment import SimCLRAugment
from sleuth.models import load_encoder, projection_head, save_encoder
from sleuth.models.losses import nt_xent


def prune(src: str, dst: str, amount: float) -> None:
    """Global magnitude pruning of every convolution and linear weight (then made permanent)."""
    enc = load_encoder(src)
    params = [(m, "weight") for m in enc.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    torch_prune.global_unstructured(params, torch_prune.L1Unstructured, amount=amount)
    for module, name in params:
        torch_prune.remove(module, name)
    save_encoder(enc, dst)


def finetune(src: str, dst: str, data: str, epochs: int, lr: float, seed: int) -> None:
    """A few epochs of SimCLR on the thief's own data, with a fresh projection head."""
    torch.manual_seed(seed)
    enc = load_encoder(src).train()
    head = projection_head(enc.rep_dim, enc.rep_dim, 64)
    images = load_images(data, "test").images  # the thief's data: the held-out test part
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=lr)
    gen, aug = torch.Generator().manual_seed(seed), SimCLRAugment()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        for i in range(0, len(images) - 127, 128):
            x = adapt(images[order[i : i + 128]], enc.config.input_spec)
            z = head(enc(torch.cat([aug(x, gen), aug(x, gen)])))
            loss = nt_xent(*z.chunk(2))
            opt.zero_grad()
            loss.backward()
            opt.step()
    save_encoder(enc.eval(), dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prune")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--amount", type=float, default=0.5)
    f = sub.add_parser("finetune")
    f.add_argument("src")
    f.add_argument("dst")
    f.add_argument("--data", default="demo")
    f.add_argument("--epochs", type=int, default=5)
    f.add_argument("--lr", type=float, default=1e-4)
    f.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.cmd == "prune":
        prune(args.src, args.dst, args.amount)
    else:
        finetune(args.src, args.dst, args.data, args.epochs, args.lr, args.seed)


if __name__ == "__main__":
    main()
