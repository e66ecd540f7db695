"""The learned heads' direct read-out fitted to convergence before the deep path trains (`--direct-c`,
`--clip-direct-c`).

Both heads add a linear read-out of measurements (the motion table's values; for AU-LLM also the apex motion on a
coarse grid) to their logits. Trained by SGD or Adam with early stopping on one validation person, a linear model of a
hundred or so values from a few dozen clips stops short of its fit: on the realistic calibration split the read-out
alone, fitted by logistic regression on the same clips, scored several points of F1 more. Here it is fitted per AU as
an L2 logistic regression (scikit-learn) on the training clips, with their mirror images when training mirrors, and
then held fixed while the rest trains on top of it.
"""

from __future__ import annotations

import numpy as np

MIN_SHARE = 0.01  # an AU with one class in training: the log-odds of this share (or 1 - it), no weights


def fit_readout(features: np.ndarray, labels: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, F) values and (N, K) labels (1, 0, or -1 where the clip's dataset does not code the AU: pooled training
    leaves those out) -> (K, F) weights and (K,) biases of per-AU logistic regressions with inverse regularisation
    `c`."""
    from sklearn.linear_model import LogisticRegression

    weight = np.zeros((labels.shape[1], features.shape[1]), np.float32)
    bias = np.zeros(labels.shape[1], np.float32)
    for k in range(labels.shape[1]):
        coded = labels[:, k] >= 0
        y = labels[coded, k]
        if len(set(y.tolist())) < 2:
            share = np.clip(y.mean() if len(y) else 0.0, MIN_SHARE, 1 - MIN_SHARE)
            bias[k] = np.log(share / (1 - share))
            continue
        model = LogisticRegression(C=c, max_iter=5000).fit(features[coded], y)
        weight[k], bias[k] = model.coef_[0], model.intercept_[0]
    return weight, bias


def set_readout(linear, weight: np.ndarray, bias: np.ndarray) -> None:
    """Write a fit into the model's read-out (a torch Linear) and freeze it."""
    import torch

    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))
    linear.requires_grad_(False)
