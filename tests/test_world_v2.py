"""World v2 of the realistic synthetic world: v1 untouched, heads turned in 3-D, skin dragged by geometry.

The v1 frame hashes were taken before world v2 existed, under OpenCV's and numpy's baseline x86-64 code paths (no
dispatched SIMD, no IPP), which every x86-64 machine runs alike; the test renders them in a child process under the
same settings.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _baseline import run_on_baseline_paths

from instruction_data.realistic import draw_spec, render_realistic
from instruction_data.world_v2 import BONE, MESH_POINTS, harmonic_spread

V1_HASHES = {"benchmark/0/0": "f3c920e1e804ca16", "benchmark/0/3": "7bf94d7a811ee564",
             "calibration/1/5": "7ef5f875bebb3f58", "easy": "c8f6207432762e61"}
HASH_SCRIPT = """
import hashlib, json
from instruction_data.realistic import draw_spec, render_realistic
from instruction_data.synth import SynthSpec, render_clip
out = {}
for split, seed, idx in [("benchmark", 0, 0), ("benchmark", 0, 3), ("calibration", 1, 5)]:
    spec = draw_spec(idx, split, seed)
    clip = render_realistic(spec, only=[spec.onset, spec.apex])
    h = hashlib.sha256()
    for i in (spec.onset, spec.apex):
        h.update(clip.frames[i].tobytes())
    out[f"{split}/{seed}/{idx}"] = h.hexdigest()[:16]
clip = render_clip(SynthSpec(subject=0, aus=["6", "12"], n_frames=8, seed=3))
h = hashlib.sha256()
for f in clip.frames:
    h.update(f.tobytes())
out["easy"] = h.hexdigest()[:16]
print(json.dumps(out))
"""


def test_world_v1_frames_are_byte_identical_to_before_world_v2():
    assert run_on_baseline_paths(HASH_SCRIPT) == V1_HASHES


def test_v2_draws_keep_every_v1_field_and_add_their_own():
    for index in range(6):
        v1, v2 = draw_spec(index, "benchmark", 4), draw_spec(index, "benchmark", 4, world="v2")
        for f in dataclasses.fields(v1):
            if f.name not in ("world", "v2", "subject"):
                assert repr(getattr(v2, f.name)) == repr(getattr(v1, f.name)), f.name
        assert v2.subject.id == v1.subject.id
        assert v1.v2 is None and v2.v2 is not None and abs(v2.v2.pitch_deg) <= 1 and abs(v2.v2.yaw_deg) <= 1
    with pytest.raises(ValueError, match="unknown world"):
        draw_spec(0, world="v4")


def test_the_harmonic_spread_keeps_handles_and_bone_and_decays_between():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (MESH_POINTS, 2))
    handles = np.array([105, 66, 107])  # a brow
    spread = harmonic_spread(points, handles, np.tile([0.0, 1.0], (3, 1)))
    assert np.allclose(spread[handles], [0.0, 1.0])
    assert np.allclose(spread[list(BONE)], 0.0)
    free = np.setdiff1d(np.arange(MESH_POINTS), np.concatenate([handles, BONE]))
    assert (spread[free, 1] >= -1e-9).all() and (spread[free, 1] <= 1 + 1e-9).all()  # a maximum principle


@pytest.fixture(scope="module")
def brow_lowerer():
    """A v2 clip with a clear AU4 and a still head (turn drift set to zero)."""
    spec = next(s for s in (draw_spec(i, "calibration", 2, world="v2") for i in range(200))
                if [a.code for a in s.aus] == [4] and s.motions[0].amplitude_px > 1.0)
    spec = dataclasses.replace(spec, v2=dataclasses.replace(spec.v2, pitch_deg=0.0, yaw_deg=0.0, gaze_px=0.0))
    return spec, render_realistic(spec, only=[spec.onset, spec.apex])


def test_a_lowered_brow_drags_the_upper_lids_down_in_the_truth(brow_lowerer):
    spec, clip = brow_lowerer
    lids = [c for c in clip.coupled if c["au"] == 4 and c["region"] == "upper_eyelid"]
    assert lids and max(c["px"] for c in lids) > 0.05 * spec.motions[0].amplitude_px, clip.coupled
    assert clip.world == "v2" and len(clip.head_turns) == spec.n_frames


def test_a_v2_turn_is_seen_by_the_rigid3d_head_model():
    from assistant.motion.analyze import analyze_frames

    spec = draw_spec(0, "benchmark", 5, world="v2", motions=())
    spec = dataclasses.replace(spec, v2=dataclasses.replace(spec.v2, pitch_deg=0.0, yaw_deg=1.0, turn_jitter_deg=0.0,
                                                            gaze_px=0.0))
    first, last = 1, spec.n_frames - 1
    clip = render_realistic(spec, only=[first, last])
    turned = clip.head_turns[last][1] - clip.head_turns[first][1]
    analysis = analyze_frames(clip.frames[first], clip.frames[last])
    assert analysis.field.head_model == "rigid3d"
    # the analysis' depth is the mesh's, 1 / depth_scale of the rendered relief: it reads the turn that much larger
    assert analysis.field.head_motion["yaw"] == pytest.approx(spec.v2.depth_scale * turned, rel=0.2)
