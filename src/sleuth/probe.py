"""Linear-probe accuracy: the standard measure of a frozen encoder's usefulness.

A multinomial logistic regression on standardised representations of a task's train part, scored
on its test part (Chen et al., 2020's linear evaluation, with scikit-learn doing the fitting).
It is how a victim's (TA) and a stolen copy's (SA) utility are compared.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sleuth.data import load_images
from sleuth.errors import SleuthError
from sleuth.models import Encoder


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracy of a linear classifier on frozen representations."""

    task: str
    accuracy: float
    train_accuracy: float
    n_train: int
    n_test: int
    n_classes: int
    rep_dim: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> tuple[float, float]:
    """(test, train) accuracy of a standardised multinomial logistic regression."""
    if len(np.unique(train_y)) < 2:
        raise SleuthError("a linear probe needs at least 2 classes in its training labels")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y)), float(clf.score(train_x, train_y))


def linear_probe(
    encoder: Encoder, task: str, *, batch_size: int = 512, download: bool = False
) -> ProbeResult:
    """Fit on the task's train part, score on its test part (see ``sleuth.data`` for parts)."""
    start = time.perf_counter()
    train = load_images(task, "train", download=download)
    test = load_images(task, "test", download=download)
    if train.labels is None or test.labels is None:
        raise SleuthError(f"task {task} has no labels: a linear probe needs a labelled dataset")
    tr = encoder.represent(train.images, batch_size).numpy()
    te = encoder.represent(test.images, batch_size).numpy()
    acc, train_acc = probe_accuracy(tr, train.labels.numpy(), te, test.labels.numpy())
    return ProbeResult(
        task=task,
        accuracy=acc,
        train_accuracy=train_acc,
        n_train=len(train),
        n_test=len(test),
        n_classes=int(train.labels.max()) + 1,
        rep_dim=encoder.rep_dim,
        seconds=time.perf_counter() - start,
    )
