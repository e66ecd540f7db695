"""AULLM++ relation-aware AU graph: a sparse co-occurrence prior and the graph network that reads it.

The prior is estimated from the *training* labels of a fold only (the trainer passes those, never test labels):
P[i, j] = P(AU j active | AU i active) over the training clips, entries below `threshold` set to zero (sparse),
self-loops added. The network gives every AU a node whose state starts from a learned AU embedding plus a
projection of the clip's F_high feature, passes messages twice over the prior's edges, each edge re-weighted by a
learned gate (relation-aware: the data can weaken a prior edge but never adds one the prior lacks), and pools the
nodes into one LLM-sized "instruction" token.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def cooccurrence_prior(labels: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """(N, K) binary training labels -> (K, K) sparse conditional co-occurrence matrix with unit diagonal. A label of
    -1 (an AU the clip's dataset does not code) counts in neither the pair nor its denominator."""
    raw = np.asarray(labels, dtype=np.float64)
    if raw.ndim != 2:
        raise ValueError(f"labels must be (N, K), got {raw.shape}")
    y, known = np.clip(raw, 0, None), (raw >= 0).astype(np.float64)
    counts = y.T @ y  # counts[i, j] = clips with both i and j
    given = y.T @ known  # given[i, j] = clips with i whose dataset codes j
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(given > 0, counts / given, 0.0)
    cond[cond < threshold] = 0.0
    np.fill_diagonal(cond, 1.0)
    return cond.astype(np.float32)


class AUGraph(nn.Module):
    def __init__(self, prior: torch.Tensor, in_dim: int, node_dim: int, out_dim: int):
        super().__init__()
        prior = torch.as_tensor(prior, dtype=torch.float32)
        k = prior.shape[0]
        self.register_buffer("prior", prior)  # saved with the checkpoint: the fold's training prior
        self.edge_gate = nn.Parameter(torch.zeros(k, k))
        self.nodes = nn.Parameter(torch.randn(k, node_dim) * 0.02)
        self.inp = nn.Linear(in_dim, k * node_dim)
        self.layers = nn.ModuleList([nn.Linear(node_dim, node_dim) for _ in range(2)])
        self.norm = nn.LayerNorm(node_dim)
        self.out = nn.Linear(node_dim, out_dim)
        self.k, self.node_dim = k, node_dim

    def adjacency(self) -> torch.Tensor:
        """Row-normalised prior gated by learned weights in (0, 1); zero wherever the prior is zero."""
        a = self.prior * torch.sigmoid(self.edge_gate)
        return a / a.sum(dim=1, keepdim=True).clamp(min=1e-6)

    def forward(self, f_high: torch.Tensor) -> torch.Tensor:  # (B, in_dim) -> (B, out_dim)
        h = self.nodes.unsqueeze(0) + self.inp(f_high).view(-1, self.k, self.node_dim)
        a = self.adjacency()
        for layer in self.layers:
            h = self.norm(h + torch.relu(layer(torch.einsum("ij,bjd->bid", a, h))))
        return self.out(h.mean(dim=1))
