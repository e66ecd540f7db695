"""World v3 of the realistic synthetic world: world v2 under a light that stays while the head turns.

World v2 turns a face by warping its photo, so the shading moves with the skin. A real head turning under a lamp
changes each patch's angle to the light and with it the patch's brightness (instruction_data/shading.py); nothing
moved, so no rigid head model removes it, and flow reads it as motion. v3 renders every frame of a v2 clip with
that change for the frame's pitch and yaw, under a key light drawn per person (a person is filmed in one session,
under one set of lamps): from above, left or right of the camera, with an ambient share of 0.6-0.9 (a studio's
diffuse lamps; at 0.5, 41 % of the still turned faces in `benchmarks/head_turn.py --ambient 0.5` got an AU). The v2
draw, and so every v1 and v2 field of a clip, is the same in v3; v1 and v2 frames are unchanged.
"""

from __future__ import annotations

import numpy as np

from instruction_data import world_v2
from instruction_data.shading import Light

WORLDS = (*world_v2.WORLDS, "v3")  # every world (world_v2.py, whose source keys the measurement cache, stays as it was)

AMBIENT = (0.6, 0.9)  # the light's ambient share, per person
LIGHT_X = (-0.5, 0.5)  # towards the key light: image x (right) ...
LIGHT_Y = (-0.6, -0.1)  # ... image y (down: negative is from above), with 1 toward the camera


def draw_light(person: int) -> Light:
    """The person's light, fixed per `person` (the same key as world v2's relief and tissue)."""
    rng = np.random.default_rng([9, person])
    return Light(ambient=float(rng.uniform(*AMBIENT)),
                 direction=(float(rng.uniform(*LIGHT_X)), float(rng.uniform(*LIGHT_Y)), 1.0))
