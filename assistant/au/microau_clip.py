"""Micro-AU CLIP: per-AU patch-token groups of a CLIP ViT over the optical-flow image (docs/models_and_training.md).

The network only (no file or network I/O; building it from a checkpoint lives in `microau_clip_io`).

Forward pass, for a batch of flow images (B, 3, S, S) and the 68 apex landmarks in those images' pixels:
1. Local semantic independence. The vision encoder's patch tokens (post layer norm, projected to the joint space)
   are looked up under each AU's landmarks (`AU_LANDMARKS`, coordinates scaled to the S/patch grid). Patch token
   attention fuses one AU's tokens: a small MLP scores every token, a softmax over that AU's tokens gives weights
   that sum to one, the weighted sum is the AU feature f_k.
2. Global semantic dependency. Global dependency attention scores every AU feature, s_k = v . tanh(W f_k) + b_k,
   and takes the dependency weights a = softmax_k(s). The global feature g = W_g (sum_k a_k f_k) is added to each AU
   feature: h_k = f_k + g. The dependency loss asks those weights to point at the AUs that are active:
       t = y / sum(y)  (uniform 1/K when no AU is active),   L_dep = mean_b [ - sum_k t_bk * log a_bk ]
   i.e. the cross-entropy between the normalised AU label vector and the dependency weights.
3. A linear classifier per AU reads h_k -> one logit. With `direct` (ours, not in the paper), a linear read-out of
   the motion table (the region token's values of assistant.au.aullm_input, measurements only) is added to the
   logits, zero at the start: a few dozen training clips fit a linear model of the table where the CLIP path alone
   learns little (see AU-LLM's read-out, assistant.au.aullm).
4. Text side: the positive and negative sentence of every AU (`au_sentences`) through the text encoder and its
   projection, L2-normalised. The per-AU contrastive loss compares each sample's normalised h_k with the sentence
   of every batch sample's state of AU k (logits scaled by CLIP's logit scale); the label matrix
   M_k[i, j] = 1 when samples i and j share the state of AU k, so every sample of the same state is a positive.
   L_con = mean_k of the symmetric soft cross-entropy with row-normalised M_k as the target.
   Total loss = BCE(logits, y) + alpha * L_con + beta * L_dep.
5. Emotion-label-free recognition: the score of an emotion is sum_k cos(h_k, e) with e its label sentence's text
   feature; the highest score wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from assistant.motion.mmc import FULL_SCALE_PX

# iBUG-68 landmark indices per AU. AU1/2/4, 7, 12/15, 14, 17 follow the published model; the others are ours,
# chosen from the same 68-point layout so that every AU of the FACS table has a group.
AU_LANDMARKS: dict[int, tuple[int, ...]] = {
    1: (19, 20, 21, 22, 23, 24),
    2: (19, 20, 21, 22, 23, 24),
    4: (19, 20, 21, 22, 23, 24),
    5: (37, 38, 43, 44),
    6: (1, 2, 14, 15, 41, 46),
    7: (38, 41, 44, 47),
    9: (27, 28, 29, 31, 35),
    10: (31, 33, 35, 50, 52),
    12: (48, 54),
    14: (55, 59, 60, 64),
    15: (48, 54),
    17: (7, 8, 9, 57),
    20: (48, 54, 55, 59),
    23: (48, 51, 54, 57, 62, 66),
    24: (51, 57, 62, 66),
    25: (61, 62, 63, 65, 66, 67),
    26: (7, 8, 9, 57, 66),
    43: (37, 38, 40, 41, 43, 44, 46, 47),
}


@dataclass
class MicroAUCLIPConfig:
    """Settings of the heads; the CLIP backbone brings its own config."""

    aus: tuple[int, ...] = (1, 2, 4, 7, 12, 14, 15, 17)
    trainable_layers: int = 3  # last N layers of both encoders train (plus their final norms and projections)
    attention_hidden: int = 128  # hidden size of the patch-token-attention and dependency-attention MLPs
    alpha: float = 0.5  # weight of the contrastive loss
    beta: float = 0.5  # weight of the dependency loss
    image_size: int = 224
    patch_size: int = 32
    flow_max_px: float = FULL_SCALE_PX  # flow magnitude (px at the 256 working crop) drawn at full brightness
    # "flow_image": the published input (flow on the fixed `flow_max_px` scale); "motion": the noise-normalised motion
    # image (assistant.au.motion_input). A checkpoint without this key was trained on the published input.
    input: str = "flow_image"
    direct: bool = False  # the motion table's linear read-out (step 3); a checkpoint without the key has none
    region_features: int = 0  # values per clip it reads (set by the input code)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


@dataclass
class MicroAUCLIPOutput:
    logits: torch.Tensor  # (B, K)
    au_features: torch.Tensor  # (B, K, D) h_k, before normalisation
    dependency_scores: torch.Tensor  # (B, K) s_k (log-softmax gives log a_k)
    dependency_weights: torch.Tensor  # (B, K) a_k, sums to one over K
    patch_weights: list[torch.Tensor]  # per AU: (B, n_k) attention over its patch tokens, sums to one


def patch_indices(landmarks: torch.Tensor, groups: list[tuple[int, ...]], image_size: int,
                  patch_size: int) -> list[torch.Tensor]:
    """Index of the patch token under each landmark of each group: (B, n_k) per group, row-major over the grid.

    `landmarks` is (B, 68, 2) in pixels of the `image_size` image; points outside are clamped to the border patch.
    """
    grid = image_size // patch_size
    col = torch.clamp(torch.div(landmarks[..., 0], patch_size, rounding_mode="floor").long(), 0, grid - 1)
    row = torch.clamp(torch.div(landmarks[..., 1], patch_size, rounding_mode="floor").long(), 0, grid - 1)
    flat = row * grid + col
    return [flat[:, list(g)] for g in groups]


class PatchTokenAttention(nn.Module):
    """Scores each of one AU's patch tokens with an MLP and returns the softmax-weighted sum."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(self.score(tokens).squeeze(-1), dim=-1)  # (B, n)
        return torch.einsum("bn,bnd->bd", weights, tokens), weights


class GlobalDependencyAttention(nn.Module):
    """Dependency weights over the AU features and one global feature added to each of them."""

    def __init__(self, n_aus: int, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.v = nn.Linear(hidden, 1, bias=False)
        self.au_bias = nn.Parameter(torch.zeros(n_aus))
        self.global_proj = nn.Linear(dim, dim)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scores = self.v(torch.tanh(self.proj(feats))).squeeze(-1) + self.au_bias  # (B, K)
        weights = torch.softmax(scores, dim=-1)
        glob = self.global_proj(torch.einsum("bk,bkd->bd", weights, feats))
        return feats + glob.unsqueeze(1), scores, weights


def dependency_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between the normalised AU label vector (uniform when none is active) and softmax(scores)."""
    labels = labels.float()
    counts = labels.sum(dim=1, keepdim=True)
    target = torch.where(counts > 0, labels / counts.clamp(min=1.0), torch.full_like(labels, 1.0 / labels.shape[1]))
    return -(target * F.log_softmax(scores, dim=-1)).sum(dim=1).mean()


def contrastive_label_matrix(labels_k: torch.Tensor) -> torch.Tensor:
    """M[i, j] = 1 when samples i and j are in the same state (both active or both inactive) of one AU."""
    y = labels_k.bool()
    return (y[:, None] == y[None, :]).float()


def au_contrastive_loss(au_feats: torch.Tensor, text_feats: torch.Tensor, labels: torch.Tensor,
                        logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean over AUs of the symmetric soft cross-entropy between image features and their states' sentences.

    `au_feats` (B, K, D), `text_feats` (K, 2, D) with index 0 = negative and 1 = positive sentence, both
    L2-normalised; `labels` (B, K) in {0, 1}.
    """
    losses = []
    for k in range(au_feats.shape[1]):
        sentences = text_feats[k][labels[:, k].long()]  # (B, D): sample j's state sentence
        logits = logit_scale * au_feats[:, k] @ sentences.T  # (B, B)
        target = contrastive_label_matrix(labels[:, k])
        target = target / target.sum(dim=1, keepdim=True)
        i2t = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        t2i = -(target * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
        losses.append((i2t + t2i) / 2)
    return torch.stack(losses).mean()


class MicroAUCLIP(nn.Module):
    """CLIP backbone (a transformers `CLIPModel`) with the Micro-AU CLIP heads.

    `au_text_ids` / `au_text_mask` (2K, L) hold the tokenised sentences in the order neg_1, pos_1, neg_2, ...
    """

    def __init__(self, clip: nn.Module, config: MicroAUCLIPConfig, au_text_ids: torch.Tensor,
                 au_text_mask: torch.Tensor):
        super().__init__()
        self.config = config
        self.clip = clip
        dim = clip.config.projection_dim
        n = len(config.aus)
        self.groups = [AU_LANDMARKS[c] for c in config.aus]
        self.patch_attention = nn.ModuleList(PatchTokenAttention(dim, config.attention_hidden) for _ in range(n))
        self.dependency = GlobalDependencyAttention(n, dim, config.attention_hidden)
        self.cls_weight = nn.Parameter(torch.randn(n, dim) * dim ** -0.5)
        self.cls_bias = nn.Parameter(torch.zeros(n))
        self.direct = None
        if config.direct:
            if config.region_features < 1:
                raise ValueError("the direct read-out needs region_features > 0")
            self.direct = nn.Linear(config.region_features, n)
            nn.init.zeros_(self.direct.weight)
            nn.init.zeros_(self.direct.bias)
        self.register_buffer("au_text_ids", au_text_ids, persistent=False)
        self.register_buffer("au_text_mask", au_text_mask, persistent=False)
        self.freeze_backbone(config.trainable_layers)

    def freeze_backbone(self, trainable_layers: int) -> None:
        """Freeze CLIP except the last `trainable_layers` layers of each encoder, their final norms and projections."""
        self.clip.requires_grad_(False)
        if trainable_layers <= 0:
            return
        for encoder in (self.clip.vision_model.encoder, self.clip.text_model.encoder):
            for layer in encoder.layers[-trainable_layers:]:
                layer.requires_grad_(True)
        for module in (self.clip.vision_model.post_layernorm, self.clip.text_model.final_layer_norm,
                       self.clip.visual_projection, self.clip.text_projection):
            module.requires_grad_(True)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.clip.parameters() if p.requires_grad]

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters()
                if not name.startswith(("clip.", "direct.")) and p.requires_grad]

    def direct_parameters(self) -> list[nn.Parameter]:
        return list(self.direct.parameters()) if self.direct is not None else []

    def patch_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.clip.vision_model(pixel_values=pixel_values).last_hidden_state[:, 1:]
        return self.clip.visual_projection(self.clip.vision_model.post_layernorm(hidden))  # (B, P, D)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.clip.text_model(input_ids=input_ids, attention_mask=attention_mask)
        return F.normalize(self.clip.text_projection(out.pooler_output), dim=-1)

    def au_text_features(self) -> torch.Tensor:
        """(K, 2, D) normalised features of each AU's negative and positive sentence."""
        return self.encode_text(self.au_text_ids, self.au_text_mask).view(len(self.groups), 2, -1)

    def forward(self, pixel_values: torch.Tensor, landmarks: torch.Tensor,
                regions: torch.Tensor | None = None) -> MicroAUCLIPOutput:
        tokens = self.patch_tokens(pixel_values)
        index = patch_indices(landmarks, self.groups, self.config.image_size, self.config.patch_size)
        feats, patch_weights = [], []
        for k, attention in enumerate(self.patch_attention):
            group = torch.gather(tokens, 1, index[k].unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
            f, w = attention(group)
            feats.append(f)
            patch_weights.append(w)
        h, scores, weights = self.dependency(torch.stack(feats, dim=1))
        logits = (h * self.cls_weight).sum(-1) + self.cls_bias
        if self.direct is not None:
            if regions is None:
                raise ValueError("this Micro-AU CLIP reads the motion table: pass its region values")
            logits = logits + self.direct(regions)
        return MicroAUCLIPOutput(logits, h, scores, weights, patch_weights)

    def loss(self, out: MicroAUCLIPOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        labels = labels.float()
        cls = F.binary_cross_entropy_with_logits(out.logits, labels)
        con = au_contrastive_loss(F.normalize(out.au_features, dim=-1), self.au_text_features(), labels,
                                  self.clip.logit_scale.exp())
        dep = dependency_loss(out.dependency_scores, labels)
        total = cls + self.config.alpha * con + self.config.beta * dep
        return {"loss": total, "cls": cls, "contrastive": con, "dependency": dep}

    def emotion_scores(self, au_features: torch.Tensor, emotion_text: torch.Tensor) -> torch.Tensor:
        """(B, C): sum over AUs of the cosine between each AU feature and each emotion sentence feature."""
        return torch.einsum("bkd,cd->bc", F.normalize(au_features, dim=-1), F.normalize(emotion_text, dim=-1))
