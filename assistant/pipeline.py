"""The assistant: one config, one object, clip in -> motion analysis, AU evidence and an explained answer out.

`Assistant` wires the stages (motion core -> AU detector -> reasoner) with backends chosen by name in
`AssistantConfig`, builds each backend once, and keeps what a follow-up question needs (the `Result`). The app,
the CLI and the benchmarks all go through it, so they all report the same backends and timings.

Settings come from, lowest precedence first: the dataclass defaults, `MEU_*` environment variables (for example
`MEU_REASONER=vlm MEU_VLM_BASE=Qwen/Qwen2.5-VL-7B-Instruct`), a YAML file (`--config`), command-line flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import threading
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.au import AU, get_detector
from assistant.au.blendshapes import analysis_blendshapes
from assistant.au.sources import with_flow_sources
from assistant.config import parse_config
from assistant.emotions import SCHEME_CLASSES
from assistant.errors import ConfigError, MEUError
from assistant.motion.analyze import MotionConfig, analyze_clip
from assistant.motion.clip import MAX_MEGAPIXELS, MAX_MEGAPIXELS_CEILING, ClipLimits
from assistant.parse import parse_answer
from assistant.prompts import EXPRESSION_WORDS, Expression
from assistant.reasoners import get_reasoner
from assistant.reasoners.base import ChatTurn, Conversation, ReasoningRequest, last
from assistant.types import Answer, AUEvidence, MotionAnalysis

log = logging.getLogger(__name__)

ENV_PREFIX = "MEU_"
MAX_UPLOAD_MB_CEILING = 1e6  # a terabyte: more overflows the web server's 64-bit size limit (1e300 gave HTTP 500s)
MAX_LONG_VIDEO_S_CEILING = 86400.0  # a day of video; spotting is bounded by max_long_frames anyway
_MOTION = {f.name: f for f in dataclasses.fields(MotionConfig)}


def _motion_field(name: str):
    f = _MOTION[name]
    return field(default=f.default, metadata=f.metadata)


@dataclass
class AssistantConfig:
    landmarks: str = _motion_field("landmarks")
    flow: str = _motion_field("flow")
    compensation: str = _motion_field("compensation")
    mode: str = _motion_field("mode")
    size: int = _motion_field("size")
    margin: float = _motion_field("margin")
    detector: str = field(default="auto", metadata={
        "help": "AU detector backend (rules, blendshapes, fusion, aullm, microau_clip); auto = aullm when "
                "--aullm-checkpoint is set, else rules"})
    reasoner: str = field(default="auto", metadata={
        "help": "reasoner backend (template, vlm); auto = vlm when --vlm-base is set, else template"})
    language: str = field(default="en", metadata={"help": "answer language", "choices": ["en", "zh"]})
    scheme: str = field(default="5", metadata={
        "help": "emotion label set: 3 (MEGC), 5 (CASME II), 7 (DFME)", "choices": list(SCHEME_CLASSES)})
    max_upload_mb: float = field(default=50.0, metadata={"help": "largest clip file accepted (MB)"})
    max_frames: int = field(default=3000, metadata={"help": "longest clip accepted (frames)"})
    max_megapixels: float = field(default=MAX_MEGAPIXELS, metadata={
        "help": "largest frame accepted (megapixels, read from the file header before decoding; at most "
                f"{MAX_MEGAPIXELS_CEILING:g})"})
    max_long_upload_mb: float = field(default=500.0, metadata={
        "help": "largest long-video file accepted (MB); the app's upload limit is the larger of this and "
                "--max-upload-mb, and short clips still stop at --max-upload-mb"})
    max_long_video_s: float = field(default=600.0, metadata={
        "help": "longest long video accepted (seconds); in the app, videos over --max-frames are spotted as long "
                "videos"})
    max_long_frames: int = field(default=18000, metadata={
        "help": "most frames of a long video spotted (spotting costs grow with frames, not seconds: a 6 s video at "
                "1000 fps is 6000 frames); default 18000, ten minutes at 30 fps"})
    vlm_base: str | None = field(default=None, metadata={"help": "Qwen2.5-VL base model: hub name or local path"})
    vlm_adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder for --vlm-base"})
    vlm_max_new_tokens: int = field(default=512, metadata={"help": "longest VLM answer (tokens)"})
    vlm_evidence: bool = field(default=False, metadata={
        "help": "put the AU detector's probabilities into the VLM prompt (for a model trained on data built with "
                "`meu data build --evidence`)"})
    vlm_regions: bool = field(default=False, metadata={"help": "put the region motion table into the VLM prompt"})
    aullm_checkpoint: str | None = field(default=None, metadata={"help": "AU-LLM checkpoint folder"})
    microau_clip_checkpoint: str | None = field(default=None, metadata={
        "help": "Micro-AU CLIP checkpoint folder (used with --detector microau_clip)"})

    def __post_init__(self):
        """Settings from YAML and the environment skip argparse's checks, so they are checked here."""
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ConfigError(f"{f.name}={getattr(self, f.name)!r} is not valid; choose one of: "
                                  f"{', '.join(map(str, choices))}.")
        self.motion_config()  # checks size, margin and the motion settings now, not at the first upload
        for name in ("max_upload_mb", "max_long_upload_mb"):
            if not 0 < getattr(self, name) <= MAX_UPLOAD_MB_CEILING:
                raise ConfigError(f"{name} (--{name.replace('_', '-')}) = {getattr(self, name):g} must lie in "
                                  f"(0, {MAX_UPLOAD_MB_CEILING:g}] MB.")
        if self.max_frames < 2:
            raise ConfigError(f"max_frames (--max-frames) = {self.max_frames} must be at least 2 (an onset and an "
                              "apex).")
        if not 0 < self.max_megapixels <= MAX_MEGAPIXELS_CEILING:
            raise ConfigError(f"max_megapixels={self.max_megapixels:g} must lie in (0, {MAX_MEGAPIXELS_CEILING:g}]: "
                              "larger frames are refused as decompression bombs by the image reader.")
        if not 0 < self.max_long_video_s <= MAX_LONG_VIDEO_S_CEILING:
            raise ConfigError(f"max_long_video_s (--max-long-video-s) = {self.max_long_video_s:g} must lie in "
                              f"(0, {MAX_LONG_VIDEO_S_CEILING:g}] seconds.")
        if self.max_long_frames < 3:
            raise ConfigError(f"max_long_frames (--max-long-frames) = {self.max_long_frames} must be at least 3 "
                              "(spotting needs a video).")
        if self.vlm_max_new_tokens < 1:
            raise ConfigError(f"vlm_max_new_tokens (--vlm-max-new-tokens) = {self.vlm_max_new_tokens} must be at "
                              "least 1 (an answer needs words).")

    @property
    def detector_name(self) -> str:
        if self.detector != "auto":
            return self.detector
        return "aullm" if self.aullm_checkpoint else "rules"

    @property
    def reasoner_name(self) -> str:
        if self.reasoner != "auto":
            return self.reasoner
        return "vlm" if self.vlm_base else "template"

    def motion_config(self) -> MotionConfig:
        return MotionConfig(landmarks=self.landmarks, flow=self.flow, compensation=self.compensation, mode=self.mode,
                            size=self.size, margin=self.margin)

    def limits(self) -> ClipLimits:
        return ClipLimits(max_bytes=int(self.max_upload_mb * 2**20), max_frames=int(self.max_frames),
                          max_pixels=int(self.max_megapixels * 1e6))


def parse_assistant_config(argv: list[str] | None, parser: argparse.ArgumentParser | None = None,
                           environ: typing.Mapping[str, str] | None = None
                           ) -> tuple[AssistantConfig, argparse.Namespace]:
    """Defaults < MEU_* environment < YAML (--config) < flags. Extra flags may be added to `parser` first."""
    return parse_config(AssistantConfig, argv, "meu app", "MEU assistant settings", parser=parser,
                        env_prefix=ENV_PREFIX, environ=environ)


@dataclass
class Result:
    """Everything one analysis produced; a follow-up question is answered from this alone."""

    analysis: MotionAnalysis
    evidence: AUEvidence
    answer: Answer
    request: ReasoningRequest
    backends: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def for_chat(self) -> Result:
        """A copy to keep for follow-up questions (an app keeps one per user session): the clip's full-size onset,
        apex (and offset) frames, up to 120 MB each at the pixel limit and needed by no follow-up, are dropped; the
        answer, the evidence, the regions, the working-size crops and the map stay (about 2 MB)."""
        none = np.zeros((0, 0, 3), np.uint8)
        analysis = dataclasses.replace(self.analysis, clip=dataclasses.replace(self.analysis.clip, onset_frame=none,
                                                                               apex_frame=none, offset_frame=None))
        return dataclasses.replace(self, analysis=analysis, request=dataclasses.replace(self.request,
                                                                                        analysis=analysis))

    def to_dict(self) -> dict:
        """The structured result the API returns (JSON-ready)."""
        clip = self.analysis.clip
        return {
            "aus": [a.label for a in self.answer.aus],
            "au_sides": {a.label: a.side for a in self.answer.aus if a.side},  # the person's side, when one-sided
            "au_codes": [a.code for a in self.answer.aus if a.code is not None],
            "probabilities": {f"AU{s.code}": round(s.probability, 4) for s in self.evidence.scores},
            # where each reported AU's evidence came from (flow regions, blendshape scores), strongest first
            "evidence_sources": {f"AU{s.code}": [src.to_dict() for src in s.sources] for s in self.evidence.active()
                                 if s.sources},
            # regions outside a named AU's own whose motion it explained (e.g. the upper lids an AU4 pushed down),
            # so the AUs scored after it did not count that motion where they act most; empty when the detector
            # scores AUs independently (learned heads, blendshapes, a calibration without explaining away)
            "explained_away": {label: f"AU{code}" for label, code in self.evidence.explained.items()},
            "threshold": self.evidence.threshold,
            "emotion": self.answer.emotion,
            "reasoning": self.answer.reasoning,
            "text": self.answer.text,
            "parse_status": self.answer.parse_status,
            "expression": self.request.expression,
            "regions": [r.to_dict() for r in self.analysis.regions],
            "onset": clip.onset, "apex": clip.apex, "apex_spotted": clip.apex_spotted, "n_frames": clip.n_frames,
            "apex_found": clip.apex_found,
            "head_motion": {k: round(float(v), 4) for k, v in self.analysis.field.head_motion.items()},
            "blendshapes": analysis_blendshapes(self.analysis),
            "registration": self.analysis.field.registration,
            "head_model": self.analysis.field.head_model,
            "drift": {k: round(float(v), 4) for k, v in self.analysis.field.drift.items()},
            "noise_floor_px": round(float(self.analysis.field.noise_px), 4),
            "noise_source": self.analysis.field.noise_source,
            "warnings": list(self.analysis.warnings),
            "backends": dict(self.backends),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }



@dataclass
class Progress:
    """One step of `Assistant.stream`: what is known so far."""

    stage: str  # "motion" | "evidence" | "reasoning" | "done"
    analysis: MotionAnalysis | None = None
    evidence: AUEvidence | None = None
    text: str = ""
    result: Result | None = None


def _turns(history: list | None) -> list[ChatTurn]:
    """Chat history as turns: accepts ChatTurn, {"role", "content"} dicts (Gradio messages) or (user, bot) pairs."""
    if history is not None and not isinstance(history, (list, tuple)):
        raise MEUError(f"The chat history must be a list of turns (or None), not {type(history).__name__}.")
    turns: list[ChatTurn] = []
    for item in history or []:
        if isinstance(item, ChatTurn):
            turns.append(item)
        elif isinstance(item, dict):
            content = item.get("content", "")
            if isinstance(content, list):  # content blocks: keep the text ones
                content = " ".join(c.get("text", "") for c in content if isinstance(c, dict))
            turns.append(ChatTurn(str(item.get("role", "user")), str(content)))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            turns += [ChatTurn("user", str(item[0] or "")), ChatTurn("assistant", str(item[1] or ""))]
    return turns


class Assistant:
    """The product: `analyze` a clip, `stream` the same for a UI, `chat` about a result it returned."""

    def __init__(self, config: AssistantConfig | None = None):
        self.config = config or AssistantConfig()
        self._detector = None
        self._reasoner = None
        self._build_lock = threading.Lock()

    # ---- backends, built once ---------------------------------------------------------------------------
    @property
    def detector(self):
        with self._build_lock:
            if self._detector is None:
                self._detector = get_detector(self.config.detector_name, **self._detector_kwargs())
            return self._detector

    def _detector_kwargs(self) -> dict:
        c = self.config
        name = c.detector_name
        if name == "rules":
            return {"motion_config": c.motion_config()}
        if name == "blendshapes":
            return {"landmarks": c.landmarks}
        if name == "fusion":
            return {"motion_config": c.motion_config(), "landmarks": c.landmarks}
        checkpoint = {"aullm": c.aullm_checkpoint, "microau_clip": c.microau_clip_checkpoint}.get(name)
        if name in ("aullm", "microau_clip") and not checkpoint:
            raise ConfigError(f"The {name} detector needs a checkpoint: --{name.replace('_', '-')}-checkpoint DIR "
                              f"(or {ENV_PREFIX}{name.upper()}_CHECKPOINT).")
        if name == "aullm":
            return {"checkpoint": checkpoint, "landmarks": c.landmarks}
        return {"checkpoint": checkpoint} if checkpoint else {}

    @property
    def reasoner(self):
        with self._build_lock:
            if self._reasoner is None:
                name = self.config.reasoner_name
                kwargs = {}
                if name == "vlm":
                    if not self.config.vlm_base:
                        raise ConfigError("The vlm reasoner needs --vlm-base (or MEU_VLM_BASE): a Qwen2.5-VL model "
                                          "name or folder.")
                    kwargs = {"base": self.config.vlm_base, "adapter": self.config.vlm_adapter,
                              "max_new_tokens": self.config.vlm_max_new_tokens}
                self._reasoner = get_reasoner(name, **kwargs)
            return self._reasoner

    def backends(self) -> dict[str, str]:
        """Names of the active backends, as shown to the user."""
        c = self.config
        out = {"landmarks": c.landmarks, "flow": c.flow, "compensation": c.compensation, "mmc": c.mode,
               "detector": c.detector_name, "reasoner": c.reasoner_name, "default language": c.language,
               "emotions": f"{c.scheme}-class ({', '.join(SCHEME_CLASSES[c.scheme])})"}
        if c.reasoner_name == "vlm":
            out["vlm"] = c.vlm_base + (f" + {c.vlm_adapter}" if c.vlm_adapter else "")
        if c.detector_name == "aullm" and c.aullm_checkpoint:
            out["aullm"] = c.aullm_checkpoint
        if c.detector_name == "microau_clip" and c.microau_clip_checkpoint:
            out["microau_clip"] = c.microau_clip_checkpoint
        return out

    def warm_up(self) -> None:
        """Load every model now so the first request does not pay for it."""
        from assistant.motion.face import get_landmarker

        get_landmarker(self.config.landmarks)
        _ = self.detector, self.reasoner
        from assistant.reasoners.vlm import VLMReasoner

        if isinstance(self.reasoner, VLMReasoner):  # it loads on first use: a base that cannot load is said at start
            _ = self.reasoner.model

    # ---- analysis -------------------------------------------------------------------------------------------
    def stream(self, source: str | Path | list[np.ndarray], apex_image: str | Path | np.ndarray | None = None, *,
               onset: int | None = None, apex: int | None = None, offset: int | None = None,
               language: str | None = None, expression: Expression = "micro") -> Iterator[Progress]:
        """Analyse a clip step by step: the motion analysis, then the evidence, then the answer text as it grows.
        `source`: a video file, a frame folder, a list of frames, or with `apex_image` the onset image. Arrays are RGB
        (OpenCV's `imread` gives BGR: convert it, or pass the file's path), grey or RGBA, 8- or 16-bit or float;
        PIL images are accepted too. Frame numbers apply to a video or a folder, not to two images.
        `offset`: where the expression has gone, when known (slow drift is cancelled with its frame).
        `expression` is "macro" for a long expression a video's spotter found: the template reasoner then names it a
        macro-expression (the VLM keeps the micro-expression prompt it was trained on)."""
        lang = language or self.config.language
        if expression not in EXPRESSION_WORDS:
            raise MEUError(f"expression must be one of {', '.join(EXPRESSION_WORDS)}, not {expression!r}.")
        t0 = time.perf_counter()
        analysis = analyze_clip(source, apex_image, onset=onset, apex=apex, offset=offset,
                                config=self.config.motion_config(),
                                limits=self.config.limits())
        timings = {k: v for k, v in analysis.timings.items() if k != "total"}
        timings["motion"] = time.perf_counter() - t0
        yield Progress("motion", analysis=analysis)

        t = time.perf_counter()
        evidence = with_flow_sources(self.detector.detect(analysis.clip, analysis), analysis.regions) \
            if self.config.detector_name == "rules" else self.detector.detect(analysis.clip, analysis)
        timings["detector"] = time.perf_counter() - t
        yield Progress("evidence", analysis=analysis, evidence=evidence)

        request = ReasoningRequest(analysis=analysis, evidence=evidence, lang=lang,
                                   emotion_options=SCHEME_CLASSES[self.config.scheme],
                                   include_evidence=self.config.vlm_evidence, include_regions=self.config.vlm_regions,
                                   expression=expression)
        t = time.perf_counter()
        text = ""
        for text in self.reasoner.stream(request):
            if "first_text" not in timings:
                timings["first_text"] = time.perf_counter() - t0
            yield Progress("reasoning", analysis=analysis, evidence=evidence, text=text)
        timings["reasoner"] = time.perf_counter() - t
        answer = self._answer_from_text(text, evidence)
        timings["total"] = time.perf_counter() - t0
        backends = {**analysis.backends, "detector": evidence.backend, "reasoner": self.reasoner.name}
        answer.backends, answer.timings = backends, timings
        result = Result(analysis=analysis, evidence=evidence, answer=answer, request=request, backends=backends,
                        timings=timings)
        log.info("analysed %s: AUs %s, emotion %s, %.2f s", analysis.clip.source,
                 ",".join(a.label for a in answer.aus) or "none", answer.emotion, timings["total"])
        yield Progress("done", analysis=analysis, evidence=evidence, text=text, result=result)

    def analyze(self, source: str | Path | list[np.ndarray], apex_image: str | Path | np.ndarray | None = None, *,
                onset: int | None = None, apex: int | None = None, offset: int | None = None,
                language: str | None = None, expression: Expression = "micro") -> Result:
        """The whole analysis at once; the arguments are `stream`'s."""
        return last(self.stream(source, apex_image, onset=onset, apex=apex, offset=offset, language=language,
                                expression=expression), None).result

    def _answer_from_text(self, text: str, evidence: AUEvidence) -> Answer:
        """Parse the answer text back (the same parser evaluation uses); AU sides come from the evidence."""
        parsed = parse_answer(text, SCHEME_CLASSES[self.config.scheme])
        sides = {s.code: s.side for s in evidence.scores}
        body = parsed.conclusion and text.rsplit(parsed.conclusion, 1)[0].rstrip() or text
        return Answer(aus=[AU(c, sides.get(c)) for c in sorted(parsed.aus)], emotion=parsed.emotion, reasoning=body,
                      text=text, parse_status=parsed.status)

    # ---- follow-up chat -------------------------------------------------------------------------------------
    def chat_stream(self, history: list | None, message: str, result: Result) -> Iterator[str]:
        """The reply to a follow-up question as it grows, grounded in `result`. The result is required: an assistant
        serving several users keeps no "last analysis", which would be another user's."""
        if not isinstance(result, Result):
            raise MEUError("Analyse a clip first and pass its result: follow-up questions are answered from that "
                           "analysis (chat(history, message, result), with the Result that analyze() returned).")
        if not isinstance(message, str):
            raise MEUError(f"The question must be text (a str), not {type(message).__name__}.")
        if not message.strip():
            raise MEUError("Type a question about the clip first.")
        yield from self.reasoner.follow_up(self.conversation(history, result), message.strip())

    def conversation(self, history: list | None, result: Result) -> Conversation:
        """The grounding of a follow-up: `result` and the turns since its answer. A chat window that opens with that
        answer (as the app's does) has it dropped, since the conversation already holds it."""
        turns = _turns(history)
        if turns and turns[0].role == "assistant" and turns[0].content.strip() == result.answer.text.strip():
            turns = turns[1:]
        return Conversation(request=result.request, answer=result.answer, turns=turns)

    def chat(self, history: list | None, message: str, result: Result) -> str:
        return last(self.chat_stream(history, message, result), "")
