"""The assistant end to end on synthetic clips (labelled synthetic): real landmarks, TV-L1, rules, template."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from app_server import make_examples

from assistant.demo import write_examples
from assistant.errors import (
    ClipTooLargeError,
    ClipTooShortError,
    ConfigError,
    MEUError,
    NoFaceError,
    UnreadableClipError,
)
from assistant.files import save_png
from assistant.motion.clip import write_video
from assistant.parse import parse_answer
from assistant.pipeline import Assistant, AssistantConfig, parse_assistant_config


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_examples(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def assistant():
    return Assistant()


@pytest.fixture(scope="module")
def smile(assistant, clips):
    return assistant.analyze(clips / "happiness_AU6_AU12.mp4")


def test_end_to_end_smile_clip(smile):
    codes = [a.code for a in smile.answer.aus]
    assert 12 in codes and 6 in codes
    assert smile.answer.emotion == "happiness"
    parsed = parse_answer(smile.answer.text)
    assert parsed.status == "ok" and sorted(parsed.aus) == sorted(codes) and parsed.emotion == "happiness"
    assert smile.analysis.clip.apex_spotted and 0 < smile.analysis.clip.apex < 16
    assert smile.backends["detector"] == "rules" and smile.backends["reasoner"] == "template"
    assert smile.backends["landmarks"] == "mediapipe" and smile.backends["flow"] == "tvl1"
    for key in ("motion", "detector", "reasoner", "first_text", "total"):
        assert smile.timings[key] >= 0
    d = json.loads(json.dumps(smile.to_dict()))
    assert d["emotion"] == "happiness" and d["probabilities"]["AU12"] >= 0.5
    assert {"region", "side", "direction", "colour", "intensity"} <= set(d["regions"][0])
    assert d["reasoning"] and d["text"].endswith("Micro-expression: happiness")


def test_stream_reports_each_stage_in_order(assistant, clips):
    steps = list(assistant.stream(clips / "surprise_AU1_AU2.mp4", language="zh"))
    stages = [p.stage for p in steps]
    assert stages[:2] == ["motion", "evidence"] and stages[-1] == "done"
    assert set(stages[2:-1]) == {"reasoning"}
    result = steps[-1].result
    assert result.answer.emotion == "surprise" and {1, 2} <= {a.code for a in result.answer.aus}
    assert "微表情: 惊讶" in result.answer.text


def test_onset_and_apex_images(assistant, tmp_path):
    from instruction_data.synth import SynthSpec, render_clip

    clip = render_clip(SynthSpec(subject=0, aus=["6", "12"], n_frames=12, amplitude_px=2.0, frame_size=(320, 240),
                                 face_height_frac=0.7, seed=3))
    onset, apex = save_png(tmp_path / "onset.png", clip.frames[clip.onset]), save_png(tmp_path / "apex.png",
                                                                                      clip.frames[clip.apex])
    result = assistant.analyze(onset, apex)
    assert result.answer.emotion == "happiness"
    assert (result.analysis.clip.onset, result.analysis.clip.apex) == (0, 1)


def test_given_apex_is_used(assistant, clips):
    result = assistant.analyze(clips / "happiness_AU6_AU12.mp4", onset=1, apex=5)
    assert (result.analysis.clip.onset, result.analysis.clip.apex, result.analysis.clip.apex_spotted) == (1, 5, False)


def test_chat_is_grounded_in_the_result(assistant, smile):
    reply = assistant.chat([], "Which AUs did you find and how sure are you?", smile)
    assert "AU12" in reply and f"{smile.evidence.probability(12):.2f}" in reply
    history = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}, {"role": "assistant", "content": "x"}]
    assert "can't answer" in assistant.chat(history, "Who is this person?", smile)



def test_library_chat_needs_the_result_it_answers_from(assistant, smile):
    """Without a result the library used to answer from the process-wide last analysis: in a server, another
    user's. The result is now required, and a missing one is a clear error."""
    with pytest.raises(TypeError, match="result"):
        assistant.chat([], "why?")
    with pytest.raises(TypeError, match="result"):
        next(assistant.chat_stream([], "why?"))
    for missing in (None, smile.to_dict()):
        with pytest.raises(MEUError, match="Analyse a clip first and pass its result"):
            assistant.chat([], "why?", missing)
    assert not hasattr(assistant, "last")


def test_library_calls_with_the_wrong_types_get_a_sentence(assistant, smile):
    """A history that is not a list, a question that is not text and one image without its apex stopped with
    TypeError or AttributeError tracebacks from deep inside."""
    with pytest.raises(MEUError, match="The chat history must be a list of turns"):
        assistant.chat(5, "why?", smile)
    for question in (5, ["why?"], b"why?"):
        with pytest.raises(MEUError, match="The question must be text"):
            assistant.chat([], question, smile)
    with pytest.raises(MEUError, match="One image is half a clip: give the apex image too"):
        assistant.analyze(smile.analysis.clip.onset_frame)


def test_the_result_kept_for_follow_ups_drops_the_full_frames(assistant, smile):
    """An app keeps one result per session for follow-ups; holding full-size frames kept a server ~140 MB larger per
    24-megapixel pair."""
    slim = smile.for_chat()
    assert slim.analysis.clip.onset_frame.size == 0 and slim.request.analysis.clip.apex_frame.size == 0
    assert smile.analysis.clip.onset_frame.size > 0  # the original is untouched
    for q in ("Which AUs did you find and how sure are you?", "Why this emotion?", "Where did the face move?"):
        assert assistant.chat([], q, slim) == assistant.chat([], q, smile)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, clips):
    from instruction_data.synth import SynthSpec, render_clip

    d = tmp_path_factory.mktemp("bad")
    (d / "text.mp4").write_text("not a video\n" * 30)
    rng = np.random.default_rng(0)
    face = render_clip(SynthSpec(subject=0, n_frames=4, frame_size=(320, 240), face_height_frac=0.7)).frames[0]
    write_video([face], d / "one_frame.mp4")
    write_video([np.full((240, 320, 3), 120, np.uint8) + rng.integers(0, 3, (240, 320, 3), dtype=np.uint8)
                 for _ in range(4)], d / "no_face.mp4")
    return d


@pytest.mark.parametrize("name,config,error,words", [
    ("text.mp4", {}, UnreadableClipError, "text.mp4"),
    ("one_frame.mp4", {}, ClipTooShortError, "1 frame"),
    ("no_face.mp4", {}, NoFaceError, "No face"),
    ("clip", {"max_upload_mb": 0.001}, ClipTooLargeError, "over the limit"),
    ("clip", {"max_frames": 8}, ClipTooLargeError, "more than 8 frames"),
])
def test_bad_input_gives_a_clear_error(bad_inputs, clips, name, config, error, words):
    path = clips / "surprise_AU1_AU2.mp4" if name == "clip" else bad_inputs / name
    with pytest.raises(error, match=words):
        Assistant(AssistantConfig(**config)).analyze(path)


def test_config_precedence_defaults_env_yaml_flags(tmp_path):
    cfg, _ = parse_assistant_config([], environ={})
    assert (cfg.detector_name, cfg.reasoner_name, cfg.language) == ("rules", "template", "en")
    env = {"MEU_LANGUAGE": "zh", "MEU_MAX_FRAMES": "99", "MEU_VLM_BASE": "/models/qwen", "MEU_FLOW": "dis"}
    cfg, _ = parse_assistant_config([], environ=env)
    assert (cfg.language, cfg.max_frames, cfg.reasoner_name, cfg.flow) == ("zh", 99, "vlm", "dis")
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump({"language": "en", "aullm_checkpoint": "ckpt/"}))
    cfg, _ = parse_assistant_config(["--config", str(path), "--flow", "tvl1"], environ=env)
    assert (cfg.language, cfg.flow, cfg.detector_name, cfg.max_frames) == ("en", "tvl1", "aullm", 99)
    assert Assistant(cfg).backends()["aullm"] == "ckpt/"
    with pytest.raises(ConfigError, match="MEU_MAX_FRAMES"):
        parse_assistant_config([], environ={"MEU_MAX_FRAMES": "many"})
    with pytest.raises(ConfigError, match="language='fr' is not valid"):
        parse_assistant_config([], environ={"MEU_LANGUAGE": "fr"})


def test_demo_examples_are_written_once(tmp_path):
    paths = write_examples(tmp_path, n_frames=8, frame_size=(256, 192))
    assert len(paths) >= 3 and all(p.suffix == ".mp4" and p.stat().st_size > 1000 for p in paths)
    mtimes = [p.stat().st_mtime_ns for p in paths]
    assert write_examples(tmp_path, n_frames=8, frame_size=(256, 192)) == paths
    assert [p.stat().st_mtime_ns for p in paths] == mtimes


def test_configured_vlm_replaces_the_template_reasoner(tmp_path, clips):
    from finetune.tiny_vlm import build_tiny_vlm

    base = build_tiny_vlm(tmp_path / "tiny_vlm")
    assistant = Assistant(AssistantConfig(vlm_base=str(base), vlm_max_new_tokens=16, flow="dis"))
    assert assistant.backends()["reasoner"] == "vlm" and assistant.backends()["vlm"] == str(base)
    result = assistant.analyze(clips / "surprise_AU1_AU2.mp4")
    assert result.backends["reasoner"] == "vlm" and result.answer.text
    assert result.answer.parse_status in ("ok", "inferred", "unparsable")  # a random tiny model: any status
    assert parse_answer(result.answer.text).status == result.answer.parse_status
    assert assistant.chat([], "Why this emotion?", result)


def test_follow_up_history_from_the_chat_window_does_not_repeat_the_first_answer(assistant, smile):
    """The app's chat window opens with the first answer, which the conversation already holds: a VLM given it twice
    would see two answers in a row before the first question."""
    window = [{"role": "assistant", "content": [{"type": "text", "text": smile.answer.text}]},
              {"role": "user", "content": "why?"}, {"role": "assistant", "content": "because"}]
    conv = assistant.conversation(window, smile)
    assert conv.answer is smile.answer and conv.request is smile.request
    assert [(t.role, t.content) for t in conv.turns] == [("user", "why?"), ("assistant", "because")]
    assert [t.role for t in assistant.conversation(window[1:], smile).turns] == ["user", "assistant"]


def test_vlm_prompt_holds_the_evidence_line_only_when_configured(smile, clips):
    """Training data has no AU evidence line unless built with one (`meu data build --evidence`); serving must match."""
    from assistant.reasoners.vlm import request_prompt

    assert "AU evidence" not in request_prompt(smile.request) and "Region motion" not in request_prompt(smile.request)
    config, _ = parse_assistant_config(["--vlm-evidence", "--vlm-regions", "--flow", "dis"], environ={})
    result = Assistant(config).analyze(clips / "happiness_AU6_AU12.mp4")
    prompt = request_prompt(result.request)
    assert "AU evidence (rules): AU" in prompt and "Region motion" in prompt


def test_concurrent_analyses_give_the_sequential_results(assistant, clips, smile):
    from concurrent.futures import ThreadPoolExecutor

    names = ["happiness_AU6_AU12.mp4", "surprise_AU1_AU2.mp4"]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda n: assistant.analyze(clips / n), names))
    alone = [smile, assistant.analyze(clips / names[1])]
    for a, b in zip(together, alone, strict=True):
        assert a.answer.text == b.answer.text
        assert np.array_equal(a.analysis.field.flow, b.analysis.field.flow)
