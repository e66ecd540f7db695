"""Shared test setup: offline settings and a thread count that suits the 2-core machines."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GLOG_minloglevel", "2")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The real app in a subprocess on a free 127.0.0.1 port (tests/app_server.py), shared by the app tests."""
    from app_server import start_app

    with start_app(tmp_path_factory.mktemp("app"), "--max-upload-mb", "1", "--max-long-upload-mb", "1",
                   "--max-frames", "60") as server:
        yield server


# ---- synthetic datasets in the official layouts (instruction_data.layouts), shared by every test that needs data.
# 3 subjects x 2 clips, 320x240, 20 frames: small enough to write in about a second each.
def _synth_dataset(tmp_path_factory, layout: str):
    from instruction_data.layouts import write_synthetic_dataset

    return write_synthetic_dataset(layout, tmp_path_factory.mktemp(f"synth_{layout}"), subjects=3, clips=2, seed=0)


@pytest.fixture(scope="session")
def synth_casme2_root(tmp_path_factory):
    return _synth_dataset(tmp_path_factory, "casme2")


@pytest.fixture(scope="session")
def synth_samm_root(tmp_path_factory):
    return _synth_dataset(tmp_path_factory, "samm")


@pytest.fixture(scope="session")
def synth_dfme_root(tmp_path_factory):
    return _synth_dataset(tmp_path_factory, "dfme")


@pytest.fixture(scope="session")
def synth_casme3_root(tmp_path_factory):
    return _synth_dataset(tmp_path_factory, "casme3")


SYNTH_BUILD_ARGS = ("--dataset", "casme2", "--lang", "both", "--mer-ratio", "0.5", "--workers", "1")


@pytest.fixture(scope="session")
def synth_casme2_build(tmp_path_factory, synth_casme2_root):
    """`meu data build` output (TV-L1, both languages, MER mix) of the synthetic CASME II set, built in-process."""
    from instruction_data.build import main

    out = tmp_path_factory.mktemp("synth_build") / "out"
    assert main([*SYNTH_BUILD_ARGS, "--root", str(synth_casme2_root), "--out", str(out)]) == 0
    return out


def write_bomb_png(path, side: int):
    """A valid grey PNG of side x side pixels, all black: under 1 MB on disk, side**2 bytes once decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + one row of zeros
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="session")
def bomb_png(tmp_path_factory):
    """A 30000x30000 PNG of about 0.9 MB (900 megapixels): a decompression bomb, made on the spot."""
    return write_bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png", 30000)


@pytest.fixture(scope="session")
def still_astronaut():
    """scikit-image's astronaut, her landmarks, frame px per crop px, and her unmoved frame drawn by the same renderer
    as the moved ones (`instruction_data.head_turn.render_turn`), so a pair differs only by what a test moves."""
    from skimage import data

    from assistant.motion import face as face_mod
    from instruction_data.head_turn import render_turn

    image = data.astronaut()
    lm = face_mod.detect_face(image)
    return image, lm, 1.0 / face_mod.crop_box(lm).scale, render_turn(image, lm)
