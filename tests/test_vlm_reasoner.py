"""The `vlm` reasoner end to end: synthetic clip -> motion analysis -> AU evidence -> tiny Qwen2.5-VL answer."""

from __future__ import annotations

import pytest
from PIL import Image

from assistant.au import get_detector
from assistant.motion.analyze import MotionConfig, analyze_clip
from assistant.parse import parse_answer
from assistant.prompts import LEGEND_PRIOR, format_evidence_line
from assistant.reasoners import get_reasoner
from assistant.reasoners.base import ChatTurn, Conversation, ReasoningRequest
from assistant.reasoners.vlm import chat_messages, generate_text, request_prompt
from finetune.tiny_vlm import build_tiny_vlm
from instruction_data.synth import SynthSpec, render_clip


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "base")
    clip = render_clip(SynthSpec(aus=[6, 12], amplitude_px=2.0, n_frames=12, seed=1))
    config = MotionConfig(flow="dis")
    analysis = analyze_clip(clip.frames, onset=clip.onset, apex=clip.apex, config=config)
    evidence = get_detector("rules", motion_config=config).detect(analysis.clip, analysis)
    reasoner = get_reasoner("vlm", base=str(base), max_new_tokens=24)
    return reasoner, ReasoningRequest(analysis=analysis, evidence=evidence, lang="en")


def test_prompt_is_the_training_builder_with_evidence(setup):
    reasoner, request = setup
    scores = [(s.code, s.probability) for s in request.evidence.scores]
    evidence_line = format_evidence_line(scores, request.evidence.backend)
    assert evidence_line not in request_prompt(request)  # off by default, as in training data built without it
    request.include_evidence = True
    try:
        prompt = request_prompt(request)
    finally:
        request.include_evidence = False
    assert prompt.startswith(LEGEND_PRIOR["en"])
    assert evidence_line in prompt
    assert "Region motion" not in prompt
    request.include_regions = True
    try:
        with_regions = request_prompt(request)
    finally:
        request.include_regions = False
    moving = request.analysis.moving_regions()
    assert "Region motion" in with_regions and all(r.label in with_regions for r in moving)


def test_vlm_answers_end_to_end_with_streaming(setup):
    reasoner, request = setup
    steps = list(reasoner.stream(request))
    assert steps and steps[-1]
    assert all(b.startswith(a) for a, b in zip(steps, steps[1:]))
    model, processor = reasoner.model
    image = Image.fromarray(request.analysis.mmc_map)
    direct = generate_text(model, processor, chat_messages(request_prompt(request), image), 24)
    assert steps[-1].strip() == direct  # streaming yields exactly what one greedy generate() returns

    answer = reasoner.answer(request)
    parsed = parse_answer(answer.text, request.emotion_options)
    assert answer.text.strip() == direct
    assert (answer.parse_status, answer.emotion, [a.code for a in answer.aus]) == (
        parsed.status, parsed.emotion, parsed.aus)


def test_follow_up_sees_map_answer_and_turns(setup):
    reasoner, request = setup
    answer = reasoner.answer(request)
    conversation = Conversation(request=request, answer=answer,
                                turns=[ChatTurn("user", "Which side moved more?"), ChatTurn("assistant", "The left.")])
    reply = list(reasoner.follow_up(conversation, "Why AU12?"))[-1]
    model, processor = reasoner.model
    history = [("assistant", answer.text), ("user", "Which side moved more?"), ("assistant", "The left."),
               ("user", "Why AU12?")]
    image = Image.fromarray(request.analysis.mmc_map)
    expected = generate_text(model, processor, chat_messages(request_prompt(request), image, history), 24)
    assert reply.strip() == expected
