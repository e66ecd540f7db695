"""The AU-LLM network: LED filter formula, shapes, what trains, the loss, the AULLM++ parts, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _au_data import tiny_llm

from assistant.au.aullm import AULLMConfig, LEDFilter, MotionCNN, asymmetric_loss, led_matrix
from assistant.au.checkpoint import build_aullm, load_aullm, save_aullm
from assistant.au.graph import cooccurrence_prior


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory):
    return tiny_llm(tmp_path_factory)


def _iir(x: np.ndarray, r: float) -> np.ndarray:
    y = np.empty_like(x)
    y[0] = x[0]
    for t in range(1, len(x)):
        y[t] = (1 - r) * y[t - 1] + r * x[t]
    return y


@pytest.mark.parametrize("alpha,r1,r2", [(10.0, 0.4, 0.05), (2.5, 0.7, 0.2)])
def test_led_matrix_equals_the_filter_formula(alpha, r1, r2):
    w = led_matrix(torch.tensor(alpha, dtype=torch.float64), torch.tensor(r1, dtype=torch.float64),
                   torch.tensor(r2, dtype=torch.float64), 6).numpy()
    assert np.allclose(np.tril(w, -1), 0)  # upper-triangular: output t uses frames k <= t only
    x = np.random.default_rng(0).normal(size=(6, 5))  # 6 frames of 5 pixels
    expected = alpha * (_iir(x, r1) - _iir(x, r2))
    assert np.allclose(x.T @ w, expected.T)
    assert w[2, 4] == pytest.approx(alpha * (r1 * (1 - r1) ** 2 - r2 * (1 - r2) ** 2))
    assert np.allclose(w.sum(axis=0), 0)  # still clip -> no motion


def test_led_filter_is_learned_in_log_space_with_the_published_init():
    led = LEDFilter(6)
    assert led.log_alpha.item() == pytest.approx(math.log(10))
    assert led.log_r1.item() == pytest.approx(math.log(0.4))
    assert led.log_r2.item() == pytest.approx(math.log(0.05))
    assert torch.allclose(led.matrix(), led_matrix(torch.tensor(10.0), torch.tensor(0.4), torch.tensor(0.05), 6))
    frames = torch.rand(2, 6, 8, 8)
    out = led(frames)
    assert out.pow(2).mean(dim=(1, 2, 3)).allclose(torch.ones(2), atol=1e-3)  # normalised per clip
    assert led(frames[:, :1].expand(-1, 6, -1, -1)).abs().max() < 1e-2  # vs unit RMS for a moving clip


@pytest.mark.parametrize("kw", [{}, {"fusion": "linear"}, {"fusion": "high"}, {"fusion": "mid"},
                                {"soft_prompt": True}, {"graph": True}])
def test_shapes_for_six_frames_of_64(llm_dir, kw):
    torch.manual_seed(0)
    cfg = AULLMConfig(**kw)
    model, _ = build_aullm(str(llm_dir), cfg)
    x = torch.rand(2, 6, 64, 64)
    f_mid, f_high = model.features(x)
    assert f_mid.shape == (2, MotionCNN.out_dim(6, 64)) == (2, 64 * 2 * 9 * 9)
    assert f_high.shape == (2, 256)
    assert model.fusion(f_mid, f_high).shape == (2, model.llm.config.hidden_size)
    assert model(x).shape == (2, 8)


def test_only_lora_visual_fusion_and_head_train(llm_dir):
    torch.manual_seed(0)
    model, _ = build_aullm(str(llm_dir), AULLMConfig(graph=True))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    llm_trainable = {n for n in trainable if n.startswith("llm.")}
    assert llm_trainable and all("lora_" in n and ("q_proj" in n or "v_proj" in n) for n in llm_trainable)
    assert {n.split(".")[0] for n in trainable} == {"llm", "led", "cnn", "high", "fusion", "head", "graph"}
    lora = model.llm.peft_config["default"]
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (16, 32, 0.1)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.005)
    before_b = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    for _ in range(2):
        loss = asymmetric_loss(model(torch.rand(3, 6, 64, 64)), torch.tensor([[1.0] * 4 + [0.0] * 4] * 3))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if n in base)  # frozen LLM
    assert any(not torch.equal(p, before_b[n]) for n, p in model.named_parameters() if n in before_b)


def test_asymmetric_loss_equals_independent_computation():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3, size=(4, 5))
    y = (rng.random((4, 5)) < 0.4).astype(float)
    total = 0.0
    for i in range(4):
        for j in range(5):
            p = 1 / (1 + math.exp(-logits[i, j]))
            if y[i, j]:
                total += -math.log(max(p, 1e-8))  # gamma_pos = 0
            else:
                pm = max(p - 0.05, 0.0)
                total += -(pm ** 4) * math.log(max(1 - pm, 1e-8))
    got = asymmetric_loss(torch.tensor(logits), torch.tensor(y), gamma_neg=4, gamma_pos=0, clip=0.05)
    assert got.item() == pytest.approx(total / 4, rel=1e-6)


def test_cooccurrence_prior_from_training_labels():
    labels = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 0], [0, 1, 1]])
    prior = cooccurrence_prior(labels, threshold=0.5)
    # P(AU b | AU a) = 2/3 kept; P(c | b) = 1/3 cut by the threshold; P(a | b) = 2/3; c never with a
    expected = np.array([[1, 2 / 3, 0], [2 / 3, 1, 0], [0, 1, 1]], dtype=np.float32)
    assert np.allclose(prior, expected)


def test_checkpoint_round_trip_gives_the_same_outputs(llm_dir, tmp_path):
    torch.manual_seed(0)
    labels = np.eye(8, dtype=int)[[0, 1, 1, 4]] | np.eye(8, dtype=int)[[1, 0, 4, 1]]
    prior = torch.from_numpy(cooccurrence_prior(labels))
    model, _ = build_aullm(str(llm_dir), AULLMConfig(graph=True), prior)
    with torch.no_grad():  # make LoRA matter: its B matrices start at zero
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    model.eval()
    x = torch.rand(2, 6, 64, 64)
    with torch.no_grad():
        ref = model(x)
    save_aullm(model, str(llm_dir), tmp_path / "ckpt", thresholds=[0.4] * 8)
    assert not list((tmp_path / "ckpt").glob("*.bin")) and not list((tmp_path / "ckpt").glob("*.pt"))
    loaded, _, meta = load_aullm(tmp_path / "ckpt")
    with torch.no_grad():
        assert torch.allclose(loaded(x), ref, atol=1e-5)
    assert torch.equal(loaded.graph.prior, prior) and meta["thresholds"] == [0.4] * 8
