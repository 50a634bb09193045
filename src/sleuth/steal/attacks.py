"""The attacks: direct extraction (000 Alg. 1), StolenEncoder (002 Eq. 7), head recreation
(000 Alg. 2) and the access-head setting. Each queries the victim only through the metered
oracle, up front and once per view, then trains on the stored answers for as many epochs as it
likes: training is free, queries are not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from sleuth.data.augment import SimCLRAugment, rotate
from sleuth.errors import SleuthError
from sleuth.models import Encoder, projection_head
from sleuth.models.losses import nt_xent
from sleuth.progress import StageStep, TrainStep
from sleuth.steal.config import StealConfig
from sleuth.steal.losses import get_loss
from sleuth.steal.oracle import MeteredOracle

Progress = Callable[[TrainStep | StageStep], None]


@dataclass
class AttackContext:
    """What every attack gets: settings, the metered victim, the attacker's data and model."""

    cfg: StealConfig
    victim: MeteredOracle
    images: torch.Tensor  # float [0, 1] (N, C, H, W), already in the seeded query order
    labels: torch.Tensor | None
    attacker: Encoder
    device: torch.device
    gen: torch.Generator
    progress: Progress | None = None

    def query(self, views: torch.Tensor, batch: int = 512) -> torch.Tensor:
        """The victim's answers for ``views``, batch by batch, on the training device."""
        out = []
        for i in range(0, len(views), batch):
            out.append(self.victim.query(views[i : i + batch]))
            if self.progress:
                done = min(i + batch, len(views))
                self.progress(StageStep("query", done, len(views)))
        return torch.cat(out).to(self.device)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """SimCLR views; with ``cfg.rotate`` also rotated by a uniform angle, so that a thief who
        suspects a rotation watermark trains his copy to be invariant to it."""
        views = SimCLRAugment()(x.to(self.device), self.gen)
        if not self.cfg.rotate:
            return views
        angles = torch.rand(len(views), generator=self.gen, device=self.device) * 360
        return rotate(views, angles)


def fit(
    ctx: AttackContext,
    params: Iterable[nn.Parameter],
    n: int,
    epochs: int,
    step_loss: Callable[[torch.Tensor], torch.Tensor],
    stage: str = "train",
) -> list[float]:
    """Adam with cosine annealing over shuffled index batches; returns the per-epoch mean loss."""
    cfg = ctx.cfg
    params = list(params)
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(1, n // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    order_gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    for epoch in range(epochs):
        order = torch.randperm(n, generator=order_gen)
        total = 0.0
        for step in range(steps):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size].to(ctx.device)
            loss = step_loss(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            if ctx.progress:
                ctx.progress(TrainStep(stage, epoch + 1, epochs, step + 1, steps, loss.item()))
        history.append(total / steps)
    return history


def _distance(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """002's d, averaged over the batch: Euclidean distance or 1 − cosine similarity."""
    if kind == "l2":
        return (a - b).norm(dim=1).mean()
    return (1 - F.cosine_similarity(a, b, dim=1)).mean()


def _two_view_answers(ctx: AttackContext, n_images: int):
    """Two augmented views per image, both sent to the victim (two queries per image)."""
    x = ctx.images[:n_images].to(ctx.device)
    v1, v2 = ctx.augment(x), ctx.augment(x)
    return v1, v2, ctx.query(v1), ctx.query(v2)


def _simsiam_predictor(dim: int) -> nn.Sequential:
    """SimSiam's bottleneck predictor h (Chen & He, 2021), used by the symmetrized loss."""
    hidden = max(dim // 4, 8)
    return nn.Sequential(
        nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, dim)
    )


def direct(ctx: AttackContext) -> list[float]:
    """000 Alg. 1: train f_a so that f_a(w) matches f_v(w') under the chosen loss.

    One-view losses query the raw images once (w = w' = x, the papers' setting for MSE, InfoNCE,
    SoftNN, ...), or with ``augment_queries`` one augmented view of each (000 Table 17's
    "Standard", "+Rotation" with ``rotate``); two-view losses (the papers' starred ones) query two
    augmented views per image and match each stolen view to the *other* view's answer.
    """
    loss = get_loss(ctx.cfg.loss, ctx.cfg.temperature)
    f_a = ctx.attacker
    labels = None if ctx.labels is None else ctx.labels.to(ctx.device)
    if ctx.cfg.augment_queries and loss.two_views:
        raise SleuthError(
            f"--augment-queries is for one-view losses; {ctx.cfg.loss} already queries two views"
        )
    if not loss.two_views:
        n = min(len(ctx.images), ctx.victim.remaining)
        x = ctx.images[:n].to(ctx.device)
        if ctx.cfg.augment_queries:
            x = ctx.augment(x)
        answers = ctx.query(x)
        return fit(
            ctx,
            f_a.parameters(),
            n,
            ctx.cfg.epochs,
            lambda i: loss.fn(f_a(x[i]), answers[i], labels=None if labels is None else labels[i]),
        )
    n = min(len(ctx.images), ctx.victim.remaining // 2)
    v1, v2, a1, a2 = _two_view_answers(ctx, n)
    head = _simsiam_predictor(f_a.rep_dim).to(ctx.device) if ctx.cfg.loss == "symmetrized" else None
    params = list(f_a.parameters()) + (list(head.parameters()) if head is not None else [])

    def step(i: torch.Tensor) -> torch.Tensor:
        stolen = f_a(torch.cat([v1[i], v2[i]]))
        if head is not None:
            stolen = head(stolen)
        pair_labels = None if labels is None else torch.cat([labels[i], labels[i]])
        return loss.fn(stolen, torch.cat([a2[i], a1[i]]), labels=pair_labels)

    return fit(ctx, params, n, ctx.cfg.epochs, step)


def stolenencoder(ctx: AttackContext) -> list[float]:
    """002 Eq. 7: d(f_s(x), f_t(x)) + λ·d(f_s(A(x)), f_t(x)); one query per image, the
    augmentation A happens on the attacker's side only, fresh at every step.

    With ``query_aug`` (002's StolenEncoder-query-aug, the L'_2 its Eq. 7 approximates) every
    augmented view is sent to the victim too, so the second term is d(f_s(A(x)), f_t(A(x))):
    1 + epochs queries per image.
    """
    cfg, f_s = ctx.cfg, ctx.attacker
    n = min(len(ctx.images), ctx.victim.remaining // queries_per_image(cfg))
    x = ctx.images[:n].to(ctx.device)
    answers = ctx.query(x)

    def step(i: torch.Tensor) -> torch.Tensor:
        xb, views = x[i], ctx.augment(x[i])
        out = f_s(torch.cat([xb, views]))
        plain, augmented = out.chunk(2)
        target = answers[i]
        target_aug = ctx.victim.query(views).to(ctx.device) if cfg.query_aug else target
        return _distance(plain, target, cfg.distance) + cfg.lam * _distance(
            augmented, target_aug, cfg.distance
        )

    return fit(ctx, f_s.parameters(), n, cfg.epochs, step)


def recreate_head(ctx: AttackContext) -> list[float]:
    """000 Alg. 2: recreate the victim's projection head g from two views' answers with NT-Xent,
    then steal through it: the loss compares g(f_a(w)) with g(f_v(w'))."""
    cfg, f_a = ctx.cfg, ctx.attacker
    loss = get_loss(cfg.loss, cfg.temperature)
    n = min(len(ctx.images), ctx.victim.remaining // 2)
    v1, v2, a1, a2 = _two_view_answers(ctx, n)
    g = projection_head(f_a.rep_dim, f_a.rep_dim, 64).to(ctx.device)
    fit(ctx, g.parameters(), n, cfg.head_epochs, lambda i: nt_xent(g(a1[i]), g(a2[i])), "head")
    g.requires_grad_(False)
    with torch.no_grad():
        z1, z2 = g(a1), g(a2)

    def step(i: torch.Tensor) -> torch.Tensor:
        stolen = g(f_a(torch.cat([v1[i], v2[i]])))
        return loss.fn(stolen, torch.cat([z2[i], z1[i]]))

    return fit(ctx, f_a.parameters(), n, cfg.epochs, step)


def access_head(ctx: AttackContext) -> list[float]:
    """The victim returns projections z = g_v(f_v(x)): train f_a with a head of its own so that
    g_a(f_a(x)) matches z; the stolen encoder is f_a."""
    cfg, f_a = ctx.cfg, ctx.attacker
    loss = get_loss(cfg.loss, cfg.temperature)
    n = min(len(ctx.images), ctx.victim.remaining)
    x = ctx.images[:n].to(ctx.device)
    z = ctx.query(x)
    g_a = projection_head(f_a.rep_dim, f_a.rep_dim, z.shape[1]).to(ctx.device)
    params = list(f_a.parameters()) + list(g_a.parameters())
    labels = None if ctx.labels is None else ctx.labels.to(ctx.device)
    return fit(
        ctx,
        params,
        n,
        cfg.epochs,
        lambda i: loss.fn(g_a(f_a(x[i])), z[i], labels=None if labels is None else labels[i]),
    )


METHODS: dict[str, Callable[[AttackContext], list[float]]] = {
    "direct": direct,
    "stolenencoder": stolenencoder,
    "recreate-head": recreate_head,
    "access-head": access_head,
}


def queries_per_image(cfg: StealConfig) -> int:
    """How many victim queries one surrogate image costs under this method and loss."""
    if cfg.method == "recreate-head":
        return 2
    if cfg.method == "stolenencoder" and cfg.query_aug:
        return 1 + cfg.epochs
    if cfg.method == "direct" and get_loss(cfg.loss).two_views:
        return 2
    return 1


def images_needed(cfg: StealConfig) -> int:
    return math.ceil(cfg.attack_queries / queries_per_image(cfg))
