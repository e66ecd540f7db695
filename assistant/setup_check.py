"""`python -m assistant.setup_check`: one line per thing `make setup` must provide; exit 1 if one is missing."""

from __future__ import annotations

import sys


def _torch() -> str:
    import torch
    import torchvision

    ok = torch.__version__.startswith("2.14.1") and torchvision.__version__.startswith("0.29.1")
    torchvision.ops.nms(torch.zeros((1, 4)), torch.zeros(1), 0.5)  # fails when torch and torchvision do not match
    return f"{'ok' if ok else 'UNEXPECTED'} torch {torch.__version__}, torchvision {torchvision.__version__}"


def _opencv() -> str:
    import importlib.metadata as md

    import cv2

    wheels = [d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith("opencv")]
    cv2.optflow.DualTVL1OpticalFlow_create()
    ok = len(wheels) == 1
    return f"{'ok' if ok else 'UNEXPECTED'} OpenCV {cv2.__version__} with TV-L1 (contrib), wheels: {', '.join(wheels)}"


def _landmarks() -> str:
    from assistant.motion.face import face_landmarker_model

    path = face_landmarker_model()
    return f"ok face landmark model offline: {path} ({path.stat().st_size // 1024} KB)"


def _video() -> str:
    import av

    assert "libx264" in av.codecs_available, "PyAV has no H.264 encoder"
    return f"ok PyAV {av.__version__} with H.264 encoding"


def main() -> int:
    failed = False
    for name, check in (("torch", _torch), ("opencv", _opencv), ("landmarks", _landmarks), ("video", _video)):
        try:
            line = check()
        except Exception as err:  # each check reports, none stops the others
            line, failed = f"FAILED {name}: {err}", True
        failed = failed or line.startswith("UNEXPECTED")
        print(f"setup check: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
