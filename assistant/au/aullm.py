"""The AU-LLM network (docs/models_and_training.md) and its AULLM++ options. A pure nn.Module: no file or network I/O.

Data flow for a batch of clips, `input: frames` (published): (B, T=6, 64, 64) grey in 0..1:

    LED filter (learnable Eulerian dynamics)   frames -> motion frames, normalised per clip
    3D-CNN                                      -> F_mid (flattened block output), F_high = Linear(F_mid -> 256)
    fusion ("efp" MLP over [F_mid, F_high] | "linear" | "high" | "mid")  -> one token of the LLM hidden size
    prompt = embedded text with slot tokens: the visual (content) token, and with AULLM++ the instruction token
             from the AU graph network (assistant.au.graph); `soft_prompt` swaps the text for learned embeddings;
             with `regions`, the region token (the motion table's measurements through a small MLP)

    LLM (LoRA r16/a32/d0.1 on q_proj, v_proj through peft; base weights frozen)
    last token's final hidden state -> Linear -> one logit per AU
    with `direct` (ours, not in the papers): + a linear read-out of the region token's values and of the apex motion
    averaged over a `direct_grid` x `direct_grid` grid (with `direct_magnitude`, its magnitude too), zero at the
    start (or fitted first and held: finetune/readout.py). A wide path beside the deep one: about 60 training clips
    per fold fit a linear model of these measurements (logistic regression on the region values alone scores 0.60
    macro F1 LOSO on world v2's calibration split), while the LLM path alone reached 0.43-0.55 there.

`input: motion` (assistant.au.aullm_input): (B, T, 2, 64, 64), the registered flow from the onset to each of the T
frames in noise floors. It is motion already, measured against the onset, so the LED filter is skipped: its columns
sum to zero, so it would high-pass the displacement and a held apex would fade; and its per-clip RMS scaling would
blow a still clip's noise up to the size of an expression, the scale the noise floors exist to keep.

The LLM is passed in already built (the loader in assistant.au.checkpoint calls `from_pretrained`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

VISUAL_SLOT = -1  # placeholder ids inside `prompt_ids`
INSTRUCTION_SLOT = -2
REGION_SLOT = -3
FUSIONS = ("efp", "linear", "high", "mid")
INPUTS = ("frames", "motion")
RMS_FLOOR = 1e-3


@dataclass
class AULLMConfig:
    aus: list[int] = field(default_factory=lambda: [1, 2, 4, 7, 12, 14, 15, 17])
    n_frames: int = 6
    size: int = 64
    fusion: str = "efp"
    soft_prompt: bool = False
    n_soft_tokens: int = 8
    graph: bool = False  # AULLM++ instruction token from the AU graph network
    graph_dim: int = 64
    high_dim: int = 256
    efp_hidden: int = 512
    dropout: float = 0.1
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    led_init: tuple[float, float, float] = (10.0, 0.4, 0.05)  # alpha, r1, r2
    input: str = "frames"  # "frames" (published) | "motion"; a checkpoint without the key is "frames"
    regions: bool = False  # the region token (assistant.au.aullm_input.region_features)
    region_features: int = 0  # values per clip in the region token (set by the input code)
    region_hidden: int = 128
    direct: bool = False  # the linear read-out beside the LLM (module docstring); a checkpoint without it has none
    direct_grid: int = 8
    direct_magnitude: bool = False  # the read-out also averages the apex motion's magnitude on its grid

    def __post_init__(self):
        if self.input not in INPUTS:
            raise ValueError(f"AU-LLM input must be one of {INPUTS}, got {self.input!r}")
        if self.direct and self.input != "motion" and not self.regions:
            raise ValueError("the direct read-out reads the motion input or the region token: neither is on")

    @property
    def direct_features(self) -> int:
        channels = 2 + self.direct_magnitude
        return (channels * self.direct_grid ** 2 if self.input == "motion" else 0) + (
            self.region_features if self.regions else 0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["led_init"] = list(self.led_init)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> AULLMConfig:
        d = dict(d)
        if "led_init" in d:
            d["led_init"] = tuple(d["led_init"])
        return cls(**d)


def led_matrix(alpha: torch.Tensor, r1: torch.Tensor, r2: torch.Tensor, n: int) -> torch.Tensor:
    """Upper-triangular (n, n) matrix W with motion = frames @ W (frames as columns, time along the last axis).

    Linearised Eulerian magnification without the magnification: two first-order low-pass filters
    y_t = (1 - r) y_{t-1} + r x_t with y_0 = x_0, and motion_t = alpha * (y1_t - y2_t). Unrolled, the weight of
    input frame k in output t (k <= t) is c_r(k, t) = (1 - r)^t for k = 0 and r (1 - r)^(t - k) for k >= 1, so
    W[k, t] = alpha * (c_r1(k, t) - c_r2(k, t)). Every column sums to zero: a still clip gives zero motion.
    """
    t = torch.arange(n, dtype=alpha.dtype, device=alpha.device)
    k = t.view(-1, 1)
    lag = (t.view(1, -1) - k).clamp(min=0)

    def coeff(r: torch.Tensor) -> torch.Tensor:
        c = r * (1 - r) ** lag
        c = torch.where(k == 0, (1 - r) ** t.view(1, -1), c)
        return torch.where(k <= t.view(1, -1), c, torch.zeros_like(c))

    return alpha * (coeff(r1) - coeff(r2))


class LEDFilter(nn.Module):
    """Learnable temporal filter; parameters live in log space (always positive), rates clamped below 1."""

    def __init__(self, n_frames: int, init: tuple[float, float, float] = (10.0, 0.4, 0.05)):
        super().__init__()
        self.n_frames = n_frames
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init[0])))
        self.log_r1 = nn.Parameter(torch.tensor(math.log(init[1])))
        self.log_r2 = nn.Parameter(torch.tensor(math.log(init[2])))

    def matrix(self) -> torch.Tensor:
        r1 = self.log_r1.exp().clamp(max=0.999)
        r2 = self.log_r2.exp().clamp(max=0.999)
        return led_matrix(self.log_alpha.exp(), r1, r2, self.n_frames)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W) -> (B, T, H, W) motion divided by each clip's RMS, so scores do not depend on contrast.

        The RMS is floored at RMS_FLOOR (far below sensor noise in 0..1 frames) so a still clip stays ~zero
        instead of having its rounding error blown up to unit size.
        """
        motion = torch.einsum("bkhw,kt->bthw", frames, self.matrix())
        rms = motion.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
        return motion / rms.clamp(min=RMS_FLOOR)


class FrameSE(nn.Module):
    """Squeeze-excitation applied to each frame separately: channel weights from that frame's spatial mean."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        w = self.fc(x.mean(dim=(3, 4)).transpose(1, 2))  # (B, T, C)
        return x * w.transpose(1, 2)[..., None, None]


class MotionCNN(nn.Module):
    """The 3D-CNN of the paper; returns F_mid, the flattened output of its second block."""

    def __init__(self, dropout: float = 0.1, channels: int = 1):
        super().__init__()
        self.block1 = nn.Sequential(
            nn.Conv3d(channels, 32, kernel_size=(1, 5, 5)), nn.ReLU(), nn.MaxPool3d((1, 3, 3)), nn.BatchNorm3d(32),
            nn.Dropout3d(dropout))
        self.conv2 = nn.Sequential(nn.Conv3d(32, 64, kernel_size=(2, 3, 3)), nn.ReLU(), nn.BatchNorm3d(64))
        self.se = FrameSE(64, 16)
        self.tail = nn.Sequential(nn.MaxPool3d((2, 2, 2)), nn.Dropout3d(dropout))

    def forward(self, motion: torch.Tensor) -> torch.Tensor:  # (B, T, H, W) or (B, T, C, H, W)
        x = self.block1(motion.unsqueeze(1) if motion.dim() == 4 else motion.transpose(1, 2))
        x = self.tail(self.se(self.conv2(x)))
        return x.flatten(1)

    @staticmethod
    def out_dim(n_frames: int, size: int) -> int:
        s = (size - 4) // 3 - 2
        return 64 * ((n_frames - 1) // 2) * (s // 2) ** 2


class Fusion(nn.Module):
    """F_mid, F_high -> one LLM token. `efp`: MLP over the concatenation (the enhanced fusion projector)."""

    def __init__(self, kind: str, mid_dim: int, high_dim: int, hidden: int, out_dim: int):
        super().__init__()
        if kind not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {kind!r}")
        self.kind = kind
        in_dim = {"efp": mid_dim + high_dim, "linear": mid_dim + high_dim, "high": high_dim, "mid": mid_dim}[kind]
        if kind == "linear":
            self.proj = nn.Linear(in_dim, out_dim)
        else:
            self.proj = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, f_mid: torch.Tensor, f_high: torch.Tensor) -> torch.Tensor:
        x = {"high": f_high, "mid": f_mid}.get(self.kind)
        return self.proj(torch.cat([f_mid, f_high], dim=1) if x is None else x)


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, gamma_neg: float = 4.0, gamma_pos: float = 0.0,
                    clip: float = 0.05, eps: float = 1e-8) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al. 2021), summed over AUs and averaged over the batch.

    Positives: -(1 - p)^gamma_pos log p. Negatives: with p_m = max(p - clip, 0), -p_m^gamma_neg log(1 - p_m):
    easy negatives are down-weighted and very confident ones (p < clip) are dropped. A target of -1 is unknown (an
    AU the clip's dataset does not code, in pooled training) and adds nothing.
    """
    p = torch.sigmoid(logits)
    p_m = (p - clip).clamp(min=0) if clip > 0 else p
    known = (targets >= 0).to(logits.dtype)
    t = targets.clamp(min=0)
    pos = t * (1 - p).pow(gamma_pos) * torch.log(p.clamp(min=eps))
    neg = (1 - t) * p_m.pow(gamma_neg) * torch.log((1 - p_m).clamp(min=eps))
    return -((pos + neg) * known).sum(dim=1).mean()


class AULLM(nn.Module):
    """AU-LLM: visual token(s) into a LoRA-tuned LLM, AU logits from the last token's hidden state."""

    def __init__(self, llm: nn.Module, prompt_ids: list[int], config: AULLMConfig, prior: torch.Tensor | None = None):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        self.config = config
        hidden = llm.config.hidden_size
        for p in llm.parameters():
            p.requires_grad_(False)
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_targets), bias="none")
        self.llm = get_peft_model(llm, lora)
        self.led = LEDFilter(config.n_frames, config.led_init) if config.input == "frames" else None
        self.cnn = MotionCNN(config.dropout, 1 if config.input == "frames" else 2)
        mid_dim = MotionCNN.out_dim(config.n_frames, config.size)
        self.high = nn.Linear(mid_dim, config.high_dim)
        self.fusion = Fusion(config.fusion, mid_dim, config.high_dim, config.efp_hidden, hidden)
        self.head = nn.Linear(hidden, len(config.aus))
        ids = torch.tensor(prompt_ids, dtype=torch.long)
        if int((ids == VISUAL_SLOT).sum()) != 1:
            raise ValueError("the prompt must hold exactly one visual slot")
        if config.graph != bool((ids == INSTRUCTION_SLOT).any()):
            raise ValueError("the prompt must hold an instruction slot exactly when the graph option is on")
        if config.regions != bool((ids == REGION_SLOT).any()):
            raise ValueError("the prompt must hold a region slot exactly when the regions option is on")
        self.region = None
        if config.regions:
            if config.region_features < 1:
                raise ValueError("the regions option needs region_features > 0")
            self.region = nn.Sequential(nn.Linear(config.region_features, config.region_hidden), nn.GELU(),
                                        nn.Dropout(config.dropout), nn.Linear(config.region_hidden, hidden))
        self.direct = None
        if config.direct:
            self.direct = nn.Linear(config.direct_features, len(config.aus))
            nn.init.zeros_(self.direct.weight)
            nn.init.zeros_(self.direct.bias)
        self.register_buffer("prompt_ids", ids, persistent=False)
        self.soft = None
        if config.soft_prompt:
            emb = self.llm.get_input_embeddings().weight
            init = emb[torch.randint(0, emb.shape[0], (config.n_soft_tokens,))].detach().clone()
            self.soft = nn.Parameter(init)
        self.graph = None
        if config.graph:
            from assistant.au.graph import AUGraph

            prior = torch.eye(len(config.aus)) if prior is None else prior
            self.graph = AUGraph(prior, config.high_dim, config.graph_dim, hidden)

    def features(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f_mid = self.cnn(self.led(frames) if self.led is not None else frames)
        return f_mid, self.high(f_mid)

    def _prompt_embeddings(self, slots: dict[int, torch.Tensor]) -> torch.Tensor:
        """The prompt's embeddings with each slot id's (B, hidden) token in place."""
        b = slots[VISUAL_SLOT].shape[0]
        ids = self.prompt_ids
        if self.soft is not None:  # learned embeddings replace the text; slots keep their order after them
            parts = [self.soft.unsqueeze(0).expand(b, -1, -1)]
            parts += [slots[s].unsqueeze(1) for s in ids[ids < 0].tolist()]
            return torch.cat(parts, dim=1)
        text = self.llm.get_input_embeddings()(ids.clamp(min=0)).unsqueeze(0).expand(b, -1, -1)
        slot_values = torch.zeros_like(text)
        for slot, token in slots.items():
            slot_values[:, ids == slot] = token.unsqueeze(1).to(text.dtype)
        return torch.where((ids < 0).view(1, -1, 1), slot_values, text)

    def forward(self, frames: torch.Tensor, regions: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H, W) grey frames in 0..1 (`input: frames`) or (B, T, 2, H, W) motion in noise floors divided by
        `motion_input.CLIP_SNR` and clipped to +-1 (`input: motion`), and with the regions option
        (B, region_features) -> (B, n_aus) logits."""
        f_mid, f_high = self.features(frames)
        slots = {VISUAL_SLOT: self.fusion(f_mid, f_high)}
        if self.graph is not None:
            slots[INSTRUCTION_SLOT] = self.graph(f_high)
        if self.region is not None:
            if regions is None:
                raise ValueError("this AU-LLM reads the region table: pass its features")
            slots[REGION_SLOT] = self.region(regions)
        embeds = self._prompt_embeddings(slots)
        out = self.llm(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long,
                                                                       device=embeds.device))
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out.hidden_states[-1]
        logits = self.head(hidden[:, -1])
        if self.direct is not None:
            logits = logits + self.direct(self.direct_inputs(frames, regions))
        return logits

    def direct_inputs(self, frames: torch.Tensor, regions: torch.Tensor | None) -> torch.Tensor:
        """(B, direct_features): what the direct read-out reads, the apex motion on its grid and the region values."""
        parts = []
        if self.config.input == "motion":
            apex = frames[:, -1]
            if self.config.direct_magnitude:  # where the motion points both ways within a cell, its mean cancels
                apex = torch.cat([apex, apex.norm(dim=1, keepdim=True)], dim=1)
            parts.append(nn.functional.adaptive_avg_pool2d(apex, self.config.direct_grid).flatten(1))
        return torch.cat(parts + ([regions] if self.region is not None else []), dim=1)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint needs: trained parameters and the visual front-end's BatchNorm statistics."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()
                if k in names or not k.startswith("llm.")}
