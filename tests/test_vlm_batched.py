"""Batched VLM generation (left padding, greedy) gives the unbatched answers token for token."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from assistant.au import get_detector
from assistant.motion.analyze import MotionConfig, analyze_clip
from assistant.reasoners import get_reasoner
from assistant.reasoners.base import ReasoningRequest
from assistant.reasoners.vlm import chat_messages, generate_ids, load_vlm
from finetune.tiny_vlm import build_tiny_vlm, tiny_sft_rows
from instruction_data.synth import SynthSpec, render_clip


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_vlm(tmp_path_factory.mktemp("vlm_batch") / "base")


def test_batched_ids_equal_unbatched(base):
    model, processor = load_vlm(str(base))
    rows = tiny_sft_rows(4, seed=2)
    sizes = (56, 112, 84, 56)  # different image sizes and prompt lengths: every row is padded differently
    conversations = [chat_messages(r["messages"][0]["content"][: 200 + 150 * i],
                                   r["images"][0].resize((sizes[i], sizes[i] + 28 * (i % 2))))
                     for i, r in enumerate(rows)]
    one = [generate_ids(model, processor, [c], 16)[0] for c in conversations]
    assert len({len(processor.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=True,
                                                  return_tensors="pt")["input_ids"][0]) for c in conversations}) == 4
    assert generate_ids(model, processor, conversations, 16) == one
    assert generate_ids(model, processor, conversations[1:3], 16) == one[1:3]


def test_reasoner_batches_equal_one_at_a_time(base):
    clip = render_clip(SynthSpec(aus=[4], amplitude_px=2.0, n_frames=10, seed=3))
    config = MotionConfig(flow="dis")
    analysis = analyze_clip(clip.frames, onset=clip.onset, apex=clip.apex, config=config)
    evidence = get_detector("rules", motion_config=config).detect(analysis.clip, analysis)
    requests = [ReasoningRequest(analysis=analysis, evidence=evidence, lang=lang, include_evidence=ev,
                                 include_regions=reg)
                for lang, ev, reg in (("en", False, False), ("zh", True, False), ("en", True, True),
                                      ("zh", False, True), ("en", False, True))]
    single = get_reasoner("vlm", base=str(base), max_new_tokens=12)
    batched = get_reasoner("vlm", base=str(base), max_new_tokens=12, batch_size=3)
    expected = [single.answer(r) for r in requests]
    got = batched.answer_batch(requests)
    assert [a.text for a in got] == [a.text for a in expected]
    assert [(a.emotion, a.parse_status) for a in got] == [(a.emotion, a.parse_status) for a in expected]
    assert len({a.text for a in expected}) > 1  # different prompts, different answers: the rows are not mixed up


def test_left_padding_leaves_each_prompt_intact(base):
    _, processor = load_vlm(str(base))
    from assistant.reasoners.vlm import _inputs

    class Device:
        device = "cpu"

    images = [Image.fromarray(np.full((56, 56, 3), v, np.uint8)) for v in (40, 200)]
    conversations = [chat_messages("short", images[0]), chat_messages("a much longer prompt " * 5, images[1])]
    batch = _inputs(Device(), processor, conversations)
    mask = batch["attention_mask"]
    assert mask[0, 0] == 0 and mask[0, -1] == 1 and bool(mask[1].all())  # padding on the left of the short row
    assert processor.tokenizer.padding_side == "right"  # the shared processor is left as it was (training pads right)
