"""World v3 of the realistic synthetic world: world v2 under a light that stays while the head turns.

The v2 frame hashes were taken before world v3 existed (commit 2e455ef), under the baseline x86-64 code paths that
every x86-64 machine runs alike (as tests/test_world_v2.py does for v1).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from _baseline import run_on_baseline_paths

from instruction_data.layouts import write_realistic_dataset
from instruction_data.realistic import draw_spec, render_realistic
from instruction_data.shading import Light
from instruction_data.world_v3 import AMBIENT

V2_HASHES = {"benchmark/0/3": "9e29da3eb46a1466", "calibration/1/5": "793b92176c14fe1a"}
HASH_SCRIPT = """
import hashlib, json
from instruction_data.realistic import draw_spec, render_realistic
out = {}
for split, seed, idx in [("benchmark", 0, 3), ("calibration", 1, 5)]:
    spec = draw_spec(idx, split, seed, world="v2")
    clip = render_realistic(spec, only=[spec.onset, spec.apex])
    h = hashlib.sha256()
    for i in (spec.onset, spec.apex):
        h.update(clip.frames[i].tobytes())
    out[f"{split}/{seed}/{idx}"] = h.hexdigest()[:16]
print(json.dumps(out))
"""


def test_world_v2_frames_are_byte_identical_to_before_world_v3():
    assert run_on_baseline_paths(HASH_SCRIPT) == V2_HASHES


def test_v3_draws_are_v2_draws_with_the_persons_light():
    lights = {}
    for index in range(8):
        v2, v3 = draw_spec(index, "benchmark", 4, world="v2"), draw_spec(index, "benchmark", 4, world="v3")
        assert repr(dataclasses.replace(v3, world="v2", light=None)) == repr(v2)
        assert AMBIENT[0] <= v3.light.ambient <= AMBIENT[1] and v3.light.direction[1] < 0  # from above
        lights.setdefault(v3.subject.id, set()).add(v3.light)
    assert all(len(seen) == 1 for seen in lights.values())  # one light per person: one filming session
    assert len({next(iter(seen)) for seen in lights.values()}) > 1


def test_a_world_is_named_by_what_its_clip_has_and_a_light_needs_world_v3():
    v2_draw = draw_spec(2, "benchmark", 4, world="v2").v2
    given = draw_spec(2, "benchmark", 4, world="v3", v2=v2_draw)
    assert given.world == "v3" and given.v2 == v2_draw and given.light is not None
    assert draw_spec(2, "benchmark", 4, world="v2", v2=v2_draw).world == "v2"
    for world in ("v1", "v2"):
        with pytest.raises(ValueError, match="world v3"):
            draw_spec(2, "benchmark", 4, world=world, light=Light(0.7))


def test_a_v3_turn_changes_the_faces_brightness_and_nothing_else():
    spec = draw_spec(0, "benchmark", 5, world="v3", motions=())
    spec = dataclasses.replace(spec, v2=dataclasses.replace(spec.v2, pitch_deg=0.0, yaw_deg=1.0, turn_jitter_deg=0.0,
                                                            gaze_px=0.0))
    last = spec.n_frames - 1
    lit = render_realistic(spec, only=[0, last])
    warped = render_realistic(dataclasses.replace(spec, world="v2", light=None), only=[0, last])
    assert lit.world == "v3" and warped.world == "v2"
    assert np.array_equal(lit.frames[0], warped.frames[0])  # no turn yet: the light is as it was
    diff = np.abs(lit.frames[last].astype(int) - warped.frames[last].astype(int)).max(axis=-1)
    assert diff.max() >= 2  # the face's shading changed ...
    ys, xs = np.nonzero(diff)
    x0, y0, x1, y1 = lit.landmarks.box
    margin = 0.1 * (x1 - x0)
    assert xs.min() >= x0 - margin and xs.max() <= x1 + margin and ys.min() >= y0 - margin and ys.max() <= y1 + margin


def test_a_v3_dataset_records_the_light_in_its_truth(tmp_path):
    root = write_realistic_dataset("casme2", tmp_path / "v3", "benchmark", subjects=1, clips=1, seed=0, world="v3")
    truth = json.loads((root / "synth_truth.json").read_text())
    assert truth["world"] == "v3"
    clip = truth["clips"][0]
    assert 0 < clip["light"]["ambient"] < 1 and len(clip["light"]["direction"]) == 3 and "v2" in clip
