"""The Gradio chat app: a thin UI around `assistant.pipeline.Assistant`.

Run `python app.py` (or `meu app`); it serves on 127.0.0.1 only, never through a share link, with Gradio's
analytics off. Besides the UI it offers one documented API endpoint for `gradio_client`:

    from gradio_client import Client, handle_file
    result = Client("http://127.0.0.1:7860/").predict(handle_file("clip.mp4"), None, None, "en", api_name="/analyze")
    result["aus"], result["probabilities"], result["emotion"], result["reasoning"], result["regions"]
"""

from __future__ import annotations

import os

from assistant.cli import OFFLINE_ENV as _HUB_OFFLINE  # light: the cli module imports no job

OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", **_HUB_OFFLINE}
for _key, _value in OFFLINE_ENV.items():
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import errno  # noqa: E402
import hashlib  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from assistant import calibration  # noqa: E402
from assistant.errors import (  # noqa: E402
    ClipTooLargeError,
    ClipTooShortError,
    ConfigError,
    FrameIndexError,
    MEUError,
    NoFaceError,
    UnreadableClipError,
)
from assistant.files import save_png  # noqa: E402
from assistant.memory import release_periodically  # noqa: E402
from assistant.motion.mmc import draw_landmarks, with_legend  # noqa: E402
from assistant.motion.regions import face_region_masks  # noqa: E402
from assistant.pipeline import Assistant, Result, parse_assistant_config  # noqa: E402
from assistant.types import AUEvidence, AUScore, MotionAnalysis  # noqa: E402

log = logging.getLogger("meu.app")

DEFAULT_EXAMPLES = Path(__file__).resolve().parent / "outputs" / "examples"
LANGUAGES = [("English", "en"), ("Chinese (中文)", "zh")]
LANGUAGE_CHOICE = "choose one of " + ", ".join(f"{code} ({name})" for name, code in LANGUAGES)
REGION_COLUMNS = ["region", "direction", "colour", "strength", "motion px", "SNR", "coherence", "evidence for"]
# Gradio's cache sweep (`delete_cache`): every 10 minutes, files older than an hour go; all of them at shutdown.
CACHE_SWEEP_S, CACHE_AGE_S = 600, 3600
SEEN_PRUNE_AT = 4096  # remembered upload paths before those already gone are forgotten
# Gradio's upload route leaves an empty `tmp*` file at the cache's top level per upload. One this old is no upload
# still arriving (a part's first bytes are written as they come), so it goes at the next session end or API request.
SPOOL_AGE_S = 30
SPOOL_STALE_S = 600  # a spool file with bytes that nothing wrote to for this long is an upload its client gave up on
UPLOAD_GONE = ("The uploaded file is no longer on the server (uploads go when the browser tab that used them closes, "
               "and after an hour); upload it again.")
# Errors that make an upload useless: the file is removed at once instead of waiting for the sweep.
REFUSED_UPLOAD = (UnreadableClipError, ClipTooLargeError, ClipTooShortError, NoFaceError)


class SessionFiles:
    """What the app keeps on disk for its users: uploads and the images drawn for a browser session.

    A session's drawn images live in a folder of its own; the folder and the session's uploads are removed when the
    session ends (Gradio's unload event). A refused upload is removed at once. Gradio stores uploads by content hash,
    so two users who send the same file share one path: a path is removed only when no other session or request
    still holds it. Only files inside Gradio's cache are ever removed, never the ones Gradio keeps (cached
    examples). Clients that never end a session (API scripts) are left to Gradio's age sweep (`delete_cache`).
    """

    def __init__(self, cache_dir: str | Path, kept: Callable[[], Iterable[str]] = tuple):
        self.cache_dir = Path(cache_dir).resolve()
        self.root = self.cache_dir / "meu-sessions"
        self._kept = kept
        self._held: dict[str, set[str]] = {}  # upload path -> sessions / requests holding it
        self._seen: set[str] = set()  # uploads this server held that may still be on disk: removed at shutdown
        self._refusals: dict[str, str] = {}  # removed upload path -> why it was refused
        self._lock = threading.Lock()

    @staticmethod
    def _key(session: str | None) -> str:
        return hashlib.sha256((session or "anonymous").encode()).hexdigest()[:24]

    def save_image(self, session: str | None, rgb) -> str:
        """An output image as a PNG in the session's folder (a fresh name each time: browsers cache by URL)."""
        folder = self.root / self._key(session)
        return str(save_png(folder / f"{uuid.uuid4().hex[:12]}.png", rgb))

    def hold(self, session: str | None, *paths: str | None) -> None:
        """`session` (or one API request) uses these uploads; a refused one that is gone raises its reason again."""
        key = self._key(session)
        with self._lock:
            for p in filter(None, paths):
                if p in self._refusals and not Path(p).exists():
                    raise MEUError(self._refusals[p])
                if not Path(p).exists():  # removed with a session that sent the same bytes, or by the age sweep
                    raise MEUError(UPLOAD_GONE)
                self._held.setdefault(p, set()).add(key)
                self._seen.add(p)
            if len(self._seen) > SEEN_PRUNE_AT:  # files Gradio's age sweep removed need not be remembered
                self._seen = {p for p in self._seen if Path(p).exists()}

    def release(self, session: str | None, *paths: str | None, refused: MEUError | None = None) -> list[str]:
        """`session` is done with these uploads; a refused upload is removed unless another holder still uses it."""
        key, removed = self._key(session), []
        with self._lock:
            for p in filter(None, paths):
                holders = self._held.get(p, set())
                holders.discard(key)
                if not holders:
                    self._held.pop(p, None)
                    if refused is not None and self._remove(p):
                        removed.append(p)
                        self._refusals[p] = str(refused)
                        while len(self._refusals) > 1024:
                            self._refusals.pop(next(iter(self._refusals)))
        return removed

    @contextlib.contextmanager
    def api_request(self, video: str | None, what: str) -> Iterator[None]:
        """One API request's upload, held while it runs (API clients seldom end a session) and released after: at
        once removed when refused. A refusal reaches the client as its one sentence."""
        import gradio as gr

        request_id, refused = f"api-{uuid.uuid4()}", None
        try:
            if not video:
                raise MEUError("Send a video file (gradio_client.handle_file(path)).")
            self.hold(request_id, video)
            yield
        except MEUError as err:
            _refused(what, err)
            refused = err if isinstance(err, REFUSED_UPLOAD) else None
            raise gr.Error(str(err), print_exception=False) from None
        finally:
            self.release(request_id, video, refused=refused)
            self.sweep_spools()

    def end(self, session: str | None) -> None:
        """The session is over: its folder goes, and its uploads unless another holder still uses them."""
        key, removed = self._key(session), 0
        with self._lock:
            for p in [p for p, holders in self._held.items() if key in holders]:
                self._held[p].discard(key)
                if not self._held[p]:
                    del self._held[p]
                    removed += self._remove(p)
        shutil.rmtree(self.root / key, ignore_errors=True)
        spools = self.sweep_spools()
        log.info("session ended: its folder and %d upload(s) removed (%d spool file(s))", removed, spools)

    def sweep_spools(self, age_s: float = SPOOL_AGE_S, stale_s: float = SPOOL_STALE_S) -> int:
        """Remove the upload route's spool files: empty ones older than `age_s`, and ones with bytes that nothing
        wrote to for `stale_s` (an upload cut off half way; up to the upload limit each); all of them with 0.
        Returns how many."""
        if not self.cache_dir.is_dir():
            return 0
        now, removed = time.time(), 0
        for f in self.cache_dir.glob("tmp*"):
            try:
                info = f.stat()
                if f.is_file() and now - info.st_mtime >= (age_s if info.st_size == 0 else stale_s):
                    f.unlink()
                    removed += 1
            except OSError:  # another process removed it first
                continue
        return removed

    def close(self, examples: Iterable[str] = ()) -> None:
        """The server stops (Ctrl+C or SIGTERM): every upload it held, every session folder, the examples' copies and
        whatever else Gradio wrote for the page (`examples`) go, and the spool files the upload route leaves at the
        cache's top level, but for one written to in the last SPOOL_AGE_S (the cache may be shared with another
        server)."""
        with self._lock:
            for p in self._seen | set(self._kept()) | set(examples):
                self._remove(p, keep_examples=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self.sweep_spools(age_s=0, stale_s=SPOOL_AGE_S)  # a spool still being written may be another server's
        if self.cache_dir.is_dir():
            for folder in self.cache_dir.iterdir():
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        log.info("server stopped: its uploads and session folders removed from %s", self.cache_dir)

    def _remove(self, path: str, keep_examples: bool = True) -> bool:
        p = Path(path)
        try:
            inside = p.resolve().is_relative_to(self.cache_dir)
        except OSError:
            return False
        kept = set(self._kept()) if keep_examples else set()
        if not inside or path in kept or str(p.resolve()) in kept or not p.is_file():
            return False
        p.unlink(missing_ok=True)
        return True

    def sweep(self, age_s: float = CACHE_AGE_S) -> None:
        """What a server killed with SIGKILL left (no unload, no shutdown sweep): session folders and uploads older
        than `age_s`, at the next start rather than at Gradio's first age sweep. Younger files may belong to another
        server sharing the cache."""
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if time.time() - folder.stat().st_mtime > age_s:
                    shutil.rmtree(folder, ignore_errors=True)
        if self.cache_dir.is_dir():
            for folder in self.cache_dir.iterdir():
                if folder != self.root and folder.is_dir():
                    for f in folder.iterdir():
                        if f.is_file() and time.time() - f.stat().st_mtime > age_s:
                            self._remove(str(f))


def spot_summary(result) -> dict:
    """A spotting result as the API returns it (JSON: no curves)."""
    fps = result.fps or 30.0

    def row(i) -> dict:
        return {"kind": i.kind, "onset": int(i.onset), "apex": int(i.apex), "offset": int(i.offset),
                "onset_s": round(i.onset / fps, 3), "offset_s": round(i.offset / fps, 3),
                "score": round(float(i.score), 2), "near_threshold": bool(i.near_threshold), "regions": list(i.regions)}

    return {"fps": fps, "n_frames": int(result.n_frames), "intervals": [row(i) for i in result.intervals],
            "distractors": [row(i) for i in result.distractors], "notes": result.notes()}


def _refused(what: str, err: MEUError) -> None:
    """One line per refused request; tracebacks are for the app's own faults only."""
    log.info("refused %s: %s", what, err)


def _chat_handler(assistant: Assistant, no_result: str):
    """A follow-up chat event: streams the answer about the session's last result (`no_result` when there is none)."""

    def ask(message, history, result):
        history = list(history or [])
        message = (message or "").strip()
        if not message:
            yield "", history
            return
        history.append({"role": "user", "content": message})
        if result is None:
            yield "", history + [{"role": "assistant", "content": no_result}]
            return
        try:
            for reply in assistant.chat_stream(history[:-1], message, result):
                yield "", history + [{"role": "assistant", "content": reply}]
        except MEUError as err:
            _refused("question", err)
            yield "", history + [{"role": "assistant", "content": f"⚠️ {err}"}]

    return ask


def _region_table(analysis: MotionAnalysis, evidence: AUEvidence | None = None):
    """The region motion table; once the evidence is known, each region names the reported AUs its flow supports."""
    import pandas as pd

    supports: dict[str, list[str]] = {}
    for s in evidence.active() if evidence else []:
        for src in s.sources:
            if src.kind == "flow":
                supports.setdefault(src.name, []).append(f"AU{s.code}")
    rows = [[r.label, r.direction, r.colour, r.intensity, round(r.motion_px, 3), round(r.snr, 1),
             round(r.coherence, 2), ", ".join(supports.get(r.label, []))]
            for r in sorted(analysis.regions, key=lambda r: -r.snr)]
    return pd.DataFrame(rows, columns=REGION_COLUMNS)


def _au_frame(evidence: AUEvidence):
    import pandas as pd

    scores = sorted(evidence.scores, key=lambda s: -s.probability)
    return pd.DataFrame({"AU": [f"AU{s.code}" for s in scores],
                         "probability": [round(s.probability, 3) for s in scores]})


def _au_item(label: str, side: str | None, score: AUScore | None) -> str:
    """ "AU12(L) 0.91 [blendshape mouthSmileLeft +0.08; flow in the left mouth corner (0.31 px)]" """
    p = score.probability if score else 0.0
    why = f" [{'; '.join(src.describe() for src in score.sources[:2])}]" if score and score.sources else ""
    return f"{label}{'(' + side + ')' if side else ''} {p:.2f}{why}"


def _au_list(evidence: AUEvidence) -> str:
    active = evidence.active()
    if not active:
        return f"none above {evidence.threshold:.2f}"
    return ", ".join(_au_item(f"AU{s.code}", s.side, s) for s in active)


def _overlay(analysis: MotionAnalysis):
    points = analysis.crop_landmarks.points68
    masks = face_region_masks(points, analysis.field.face_mask, analysis.onset_crop.shape[:2])
    return draw_landmarks(analysis.onset_crop, points, masks)


def _status(result: Result) -> str:
    clip, t = result.analysis.clip, result.timings
    apex = f"apex frame {clip.apex}" + (" (spotted automatically)" if clip.apex_spotted else "")
    parts = [f"Done in {t.get('total', 0):.2f} s: onset frame {clip.onset}, {apex}, {clip.n_frames} frames."]
    parts += [f"Note: {w}" for w in result.analysis.warnings]
    return "\n\n".join(parts)


def pick_source(mode: str, video: str | None, onset: str | None, apex: str | None) -> tuple[str, str | None]:
    """(clip, apex image) from the open tab's inputs, else the other tab's. Half an image pair on the image tab is an
    error: analysing a video left in the other tab would answer a question the user did not ask."""
    if mode == "images" and bool(onset) != bool(apex):
        raise MEUError(f"Add the {'apex' if onset else 'onset'} image too: an image pair needs both frames.")
    if onset and apex and (mode == "images" or not video):
        return onset, apex
    if video:
        return video, None
    raise MEUError("Upload a video clip, or both an onset image and an apex image, then press Analyse.")


def backends_markdown(assistant: Assistant) -> str:
    rows = [f"| {k} | {v} |" for k, v in assistant.backends().items()]
    limits = assistant.config
    rows.append(f"| limits | {limits.max_upload_mb:g} MB, {limits.max_frames} frames, "
                f"{limits.max_megapixels:g} megapixels per frame |")
    return "**Active backends**\n\n| stage | backend |\n|---|---|\n" + "\n".join(rows)


def _keep_upload_path(image) -> None:
    """Make a gr.Image input hand over the uploaded file's path without decoding it: Gradio's own preprocessing
    decodes (and for a grey picture converts) the whole image, so a decompression bomb cost gigabytes, or ended in a
    long preprocessing error, before the pipeline could refuse it from its header with one sentence. (Set on the
    instance: a gr.Image subclass would make Gradio write a stub file beside this module.)"""
    decode = image.preprocess

    def preprocess(payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return decode(payload)

    image.preprocess = preprocess


def _explained_input(component, accepted: str, valid: Callable[[object], bool] = lambda _: True) -> None:
    """Make an input refuse what it cannot take with a sentence naming it and what it takes (set on the instance, as in
    `_keep_upload_path`): Gradio's own checks say "Value -3 is less than minimum value 0." or "Could not preprocess
    input component at index 1" without naming the box, and passed `true` or 2.5 on as a frame number."""
    read = component.preprocess

    def preprocess(payload):
        try:
            if payload is not None and not valid(payload):
                raise ValueError(payload)
            return read(payload)
        except Exception:
            raise refusal(f"{component.label}: {payload!r} is not accepted; {accepted}.") from None

    component.preprocess = preprocess


def _whole(value) -> bool:
    return not isinstance(value, bool) and (not isinstance(value, float) or value.is_integer())


def refusal(sentence: str):
    """A request the client got wrong: one log line, the sentence back, no traceback in the server log."""
    import gradio as gr

    log.info("refused request: %s", sentence)
    return gr.Error(sentence, print_exception=False)


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def quiet_input_refusals(demo) -> None:
    """Gradio prints a full traceback for every input it cannot read (a number sent as text, a language not offered,
    a file path sent without its upload, a file type not accepted): a client's mistake, not the app's fault. Each
    becomes one log line and one sentence (`refusal`); set on the instance, before any request is served."""
    import gradio as gr
    from gradio.exceptions import ComponentProcessingError
    from pydantic import ValidationError

    read = demo.preprocess_data

    async def preprocess_data(block_fn, inputs, state, explicit_call=False):
        try:
            return await read(block_fn, inputs, state, explicit_call)
        except gr.Error as err:
            if not err.print_exception:
                raise
            raise refusal(str(err.message)) from None
        except ValidationError as err:
            if "FileData" in str(err):
                raise refusal("A file input was not an uploaded file: upload it in the page, or send it with "
                              "gradio_client's handle_file(PATH).") from None
            raise refusal(f"The request's inputs could not be read: {_first_line(err)}") from None
        except ComponentProcessingError as err:  # Gradio wraps whatever a component's preprocessing raised
            if not isinstance(err.__cause__, (ValueError, TypeError)):
                raise  # a server fault (a full disk, memory): its traceback stays
            raise refusal(f"The request's inputs could not be read: {_first_line(err.__cause__)}") from None
        except (ValueError, TypeError) as err:
            raise refusal(f"The request's inputs could not be read: {_first_line(err)}") from None

    demo.preprocess_data = preprocess_data


def example_files(examples_dir: str | Path | None) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """The example clips (`*.mp4`) and image pairs (`X_onset.png` with its `X_apex.png`) of the folder; an onset image
    without its apex image is left out, with a log line."""
    folder = Path(examples_dir) if examples_dir else None
    if folder is None or not folder.is_dir():
        return [], []
    pairs = []
    for onset in sorted(folder.glob("*_onset.png")):
        apex = onset.with_name(onset.name.replace("_onset", "_apex"))
        if apex.is_file():
            pairs.append((onset, apex))
        else:
            log.info("example %s left out: it has no %s beside it", onset.name, apex.name)
    return sorted(folder.glob("*.mp4")), pairs


def build_app(assistant: Assistant, examples_dir: str | Path | None = None, concurrency: int = 1,
              files: SessionFiles | None = None):
    """The gr.Blocks UI. `concurrency` bounds simultaneous analyses (CPU-bound); follow-ups share that limit."""
    import gradio as gr  # imported here so that `--help` answers at once
    from gradio.utils import get_upload_folder

    clips, pairs = example_files(examples_dir)

    with gr.Blocks(title="MEU Assistant", delete_cache=(CACHE_SWEEP_S, CACHE_AGE_S)) as demo:
        if files is None:
            files = SessionFiles(get_upload_folder(), kept=lambda: {p for b in demo.blocks.values()
                                                                  for p in getattr(b, "keep_in_cache", ())})
        files.sweep()
        demo.session_files = files  # the page around it and `main` share it
        result_state = gr.State(None, time_to_live=CACHE_AGE_S)  # a slim copy of the result (Result.for_chat)
        mode_state = gr.State("video")
        gr.Markdown("# MEU Assistant\nMicro-expression understanding: upload a short face clip, get the motion map, "
                    "the action units, the emotion and an explanation you can question.")
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tabs():
                    with gr.Tab("Video clip") as video_tab:
                        video = gr.File(label="Video clip (mp4, avi, webm, mov)", type="filepath",
                                        file_types=[".mp4", ".avi", ".webm", ".mov", ".mkv"], elem_id="video-input")
                        if clips:
                            gr.Examples([[str(p)] for p in clips], inputs=[video], label="Example clips (synthetic)",
                                        example_labels=[p.stem.replace("_", " ") for p in clips])
                            # Gradio copies a file box's examples into its cache but does not protect the copies
                            # from session cleanup: the first session to end removed one, and the example failed for
                            # every later user
                            video.keep_in_cache.update(video.move_resource_to_block_cache(str(p)) for p in clips)
                    with gr.Tab("Onset + apex images") as image_tab:
                        with gr.Row():
                            onset_image = gr.Image(label="Onset image", type="filepath", elem_id="onset-image")
                            apex_image = gr.Image(label="Apex image", type="filepath", elem_id="apex-image")
                            for image in (onset_image, apex_image):
                                _keep_upload_path(image)
                        if pairs:
                            gr.Examples([[str(a), str(b)] for a, b in pairs], inputs=[onset_image, apex_image],
                                        label="Example image pairs (synthetic)")
                with gr.Row():
                    onset_num = gr.Number(label="Onset frame (optional)", precision=0, value=None, minimum=0)
                    apex_num = gr.Number(label="Apex frame (optional, spotted when empty or 0)", precision=0,
                                         value=None, minimum=0)
                    for number in (onset_num, apex_num):
                        _explained_input(number, "give a whole frame number, 0 or more, or leave it empty", _whole)
                language = gr.Radio(LANGUAGES, value=assistant.config.language, label="Language")
                _explained_input(language, LANGUAGE_CHOICE)
                analyze_btn = gr.Button("Analyse", variant="primary", elem_id="analyze-btn")
                status = gr.Markdown("Upload a clip or pick an example, then press **Analyse**.", elem_id="status")
                with gr.Accordion("Settings", open=True):
                    gr.Markdown(backends_markdown(assistant), elem_id="settings")
            with gr.Column(scale=2):
                with gr.Row():
                    mmc = gr.Image(label="MMC map with legend", type="filepath", interactive=False, elem_id="mmc-map",
                                   format="png")
                    overlay = gr.Image(label="Landmarks and regions", type="filepath", interactive=False,
                                       elem_id="landmarks", format="png")
                with gr.Row():
                    aus = gr.Textbox(label="Action units (probability)", interactive=False, elem_id="au-list")
                    emotion = gr.Textbox(label="Emotion", interactive=False, elem_id="emotion")
                au_plot = gr.BarPlot(x="AU", y="probability", y_lim=[0, 1], sort="-y", label="AU probabilities",
                                     elem_id="au-plot")
                regions = gr.Dataframe(headers=REGION_COLUMNS, label="Region motion", interactive=False,
                                       elem_id="regions")
        chatbot = gr.Chatbot(label="Reasoning and follow-up chat", height=420, elem_id="chat")
        with gr.Row():
            question = gr.Textbox(placeholder="Ask about the result: which AUs and how sure? why this emotion? what "
                                  "does purple mean? what is AU12?", show_label=False, scale=5, elem_id="question")
            ask_btn = gr.Button("Ask", scale=1, elem_id="ask-btn")
        api_out = gr.JSON(visible=False, label="result")
        api_btn = gr.Button(visible=False)

        video_tab.select(lambda: "video", outputs=mode_state, api_visibility="private")
        image_tab.select(lambda: "images", outputs=mode_state, api_visibility="private")

        def run(mode, video_path, onset_path, apex_path, onset_n, apex_n, lang, request):
            blank = (None, None, None, "", "", [], None)
            session = request.session_hash if request else None
            source = apex_img = None
            try:
                source, apex_img = pick_source(mode, video_path, onset_path, apex_path)
                files.hold(session, source, apex_img)
                # an empty number box arrives as 0 or None: both mean "from the start" / "spot the apex"
                onset_i = int(onset_n) if onset_n and apex_img is None else None
                apex_i = int(apex_n) if apex_n and apex_img is None else None
                yield ("Analysing…",) + blank
                for step in assistant.stream(source, apex_img, onset=onset_i, apex=apex_i, language=lang):
                    # only what this step changed is sent; re-sending the images on every streamed chunk is slow
                    message, outs = gr.skip(), [gr.skip()] * 7
                    if step.stage == "motion":
                        outs[0:3] = [files.save_image(session, with_legend(step.analysis.mmc_map,
                                                                            mode=step.analysis.mmc_mode)),
                                     files.save_image(session, _overlay(step.analysis)), _region_table(step.analysis)]
                    elif step.stage == "evidence":
                        outs[2] = _region_table(step.analysis, step.evidence)
                        outs[3] = _au_list(step.evidence)
                    elif step.stage == "reasoning":
                        outs[5] = [{"role": "assistant", "content": step.text}]
                    elif step.stage == "done":
                        answer = step.result.answer
                        by_code = {s.code: s for s in step.evidence.scores}
                        outs[3] = ", ".join(_au_item(a.label, a.side, by_code.get(a.code))
                                            for a in answer.aus) or "none"
                        outs[4], outs[6] = answer.emotion or "unparsable", step.result.for_chat()
                        message = _status(step.result)
                    yield (message,) + tuple(outs)
            except MEUError as err:
                _refused("analysis", err)
                if isinstance(err, REFUSED_UPLOAD):
                    files.release(session, source, apex_img, refused=err)
                yield (f"⚠️ **Error:** {err}",) + blank
            except Exception as err:  # keep the app up; the traceback goes to the server log
                log.exception("analysis failed")
                yield (f"⚠️ **Unexpected error** ({type(err).__name__}: {err}); details are in the server log.",) \
                    + blank

        # Gradio hands the request (and its session id) to a parameter annotated gr.Request; postponed annotations
        # leave the string "gr.Request", which Gradio cannot resolve (gradio is imported in here), so set the class.
        run.__annotations__["request"] = gr.Request
        # The plot is set whole before and after the run, never streamed: a streamed update reaches the page as a
        # change to its last value, and under load the page now and then patched a value it did not hold yet (a
        # plot without its column types: "Cannot read properties of undefined (reading 'AU')").
        analyze_btn.click(lambda: _au_frame(AUEvidence([], "none")), None, au_plot, api_visibility="private",
                          queue=False).then(
            run, [mode_state, video, onset_image, apex_image, onset_num, apex_num, language],
            [status, mmc, overlay, regions, aus, emotion, chatbot, result_state],
            api_name="analyze_ui", api_visibility="undocumented", concurrency_limit=concurrency,
            concurrency_id="work").then(
            lambda result: _au_frame(result.evidence if result is not None else AUEvidence([], "none")),
            result_state, au_plot, api_visibility="private", queue=False)

        ask = _chat_handler(assistant, "Analyse a clip first: I answer questions from its analysis.")

        for trigger in (question.submit, ask_btn.click):
            trigger(ask, [question, chatbot, result_state], [question, chatbot], api_visibility="private",
                    concurrency_limit=concurrency, concurrency_id="work")

        def analyze(video: str, onset: float | None = None, apex: float | None = None, language: str = "en") -> dict:
            """Analyse a video clip; returns AUs, probabilities, emotion, reasoning and the region table."""
            with files.api_request(video, "API analysis"):
                result = assistant.analyze(video, onset=int(onset) if onset else None, apex=int(apex) if apex else None,
                                           language=language or "en")
            return result.to_dict()

        api_btn.click(analyze, [video, onset_num, apex_num, language], api_out, api_name="analyze",
                      concurrency_limit=concurrency, concurrency_id="work")

        def session_over(request):
            files.end(request.session_hash if request else None)

        session_over.__annotations__["request"] = gr.Request
        demo.unload(session_over)
    quiet_input_refusals(demo)
    return demo


# ---- the Long video view: spotting, a timeline, a table of intervals, one interval analysed and discussed --------
LONG_STATUS = ("Upload minutes of face video: the expressions in it are spotted (micro and macro; blinks, speech and "
               "head movements left out), drawn on a timeline and listed; click an interval to analyse it.")


@dataclass
class LongView:
    """What the page needs from the Long video view to route long uploads to it."""

    file: object  # gr.File
    spot: Callable  # (path, progress) -> the view's outputs
    outputs: list


def _spot_summary(result, path: str) -> str:
    kinds = [i.kind for i in result.intervals]
    fps = result.fps or 30.0
    text = (f"Spotted {kinds.count('micro')} micro- and {kinds.count('macro')} macro-expression(s) in "
            f"{Path(path).name} ({result.n_frames / fps:.1f} s, {result.n_frames} frames); "
            f"{len(result.distractors)} blink(s), speech or head movement(s) left out.")
    text += "".join(f" {note}" for note in result.notes())
    return text + (" Click a row of the table to analyse that interval." if result.intervals else "")


def long_video_view(assistant: Assistant, files: SessionFiles, concurrency: int = 1) -> LongView:
    """The Long video tab's components and events (built inside the caller's tab)."""
    import gradio as gr
    import pandas as pd

    from assistant.long_video import (
        INTERVAL_COLUMNS,
        analyse_interval,
        interval_rows,
        timeline_figure,
    )
    from assistant.spot_worker import spot_in_process

    spotted_state = gr.State(None)  # {"path": upload, "intervals": [Interval]}
    result_state = gr.State(None)
    gr.Markdown(LONG_STATUS)
    with gr.Row():
        file = gr.File(label=f"Long video (up to {assistant.config.max_long_video_s / 60:g} min)", type="filepath",
                       file_types=[".mp4", ".avi", ".webm", ".mov", ".mkv"], elem_id="long-video-input", scale=2)
        language = gr.Radio(LANGUAGES, value=assistant.config.language, label="Language", scale=1)
        _explained_input(language, LANGUAGE_CHOICE)
    status = gr.Markdown("No long video yet.", elem_id="long-status")
    timeline = gr.Plot(label="Timeline", elem_id="timeline")
    table = gr.Dataframe(headers=INTERVAL_COLUMNS, interactive=False, elem_id="intervals",
                         label="Spotted expressions (click a row to analyse it)")
    analysis_status = gr.Markdown("", elem_id="long-analysis")
    with gr.Row():
        mmc = gr.Image(label="MMC map of the interval", type="filepath", interactive=False, elem_id="long-mmc",
                       format="png")
        with gr.Column():
            aus = gr.Textbox(label="Action units (probability)", interactive=False, elem_id="long-au-list")
            emotion = gr.Textbox(label="Emotion", interactive=False, elem_id="long-emotion")
    chatbot = gr.Chatbot(label="The interval: reasoning and follow-up chat", height=360, elem_id="long-chat")
    with gr.Row():
        question = gr.Textbox(placeholder="Ask about the analysed interval", show_label=False, scale=5,
                              elem_id="long-question")
        ask_btn = gr.Button("Ask", scale=1, elem_id="long-ask-btn")
    outputs = [status, timeline, table, spotted_state, analysis_status, mmc, aus, emotion, chatbot, result_state]
    cleared = (None, "", "", [], None)

    def spot(path, request, progress=gr.Progress()):  # noqa: B008 - Gradio's way to ask for a progress bar
        """Spotting runs in a child process (`assistant.spot_worker`) on its own queue lane, so short requests never
        wait behind it; the status line counts frames, and a closed tab stops it. The upload is held for the session
        (its intervals are analysed from it later) and removed when the session ends; a refused one at once."""
        empty = pd.DataFrame(columns=INTERVAL_COLUMNS)
        if not path:
            yield ("Upload a long video first.", None, empty, None, "") + cleared
            return
        session = request.session_hash if request else None
        result = None
        try:
            files.hold(session, path)
            for update in spot_in_process(path, assistant.config.max_long_video_s,
                                          max_frames=assistant.config.max_long_frames):
                result = update.result
                if result is None:
                    progress((update.done, update.total), desc="Spotting", unit="frames")
                    yield (f"Spotting… {update.done} frames done.",) + (gr.skip(),) * (len(outputs) - 1)
        except MEUError as err:
            files.release(session, path, refused=err)
            yield (f"⚠️ **Error:** {err}", None, empty, None, "") + cleared
            return
        except Exception as err:  # keep the app up; the traceback goes to the server log
            log.exception("spotting failed")
            files.release(session, path, refused=MEUError(f"spotting failed ({type(err).__name__})"))
            yield (f"⚠️ **Unexpected error** ({type(err).__name__}: {err}); details are in the server log.", None,
                   empty, None, "") + cleared
            return
        table_value = pd.DataFrame(interval_rows(result), columns=INTERVAL_COLUMNS)
        yield (_spot_summary(result, path), timeline_figure(result), table_value,
               {"path": path, "intervals": list(result.intervals), "times": result.frame_times}, "") + cleared

    def analyse(spotted, lang, evt: gr.SelectData, request):
        """The clicked interval's analysis; its map is drawn into the session's folder, removed with the session
        (an image returned as an array lands in Gradio's cache, where neither the session's end nor shutdown saw it)."""
        if not spotted or not spotted["intervals"]:
            yield ("Spot a long video first.",) + cleared
            return
        try:
            number = interval_number(evt.row_value, evt.index, len(spotted["intervals"]))
        except MEUError as err:
            yield (f"⚠️ **Error:** {err}",) + cleared
            return
        if not Path(spotted["path"]).exists():
            yield (f"⚠️ **Error:** {UPLOAD_GONE}",) + cleared
            return
        interval = spotted["intervals"][number - 1]
        where = f"interval {number} ({interval.kind}, frames {interval.onset}-{interval.offset}, apex {interval.apex})"
        yield (f"Analysing {where}…",) + cleared
        try:
            for step in analyse_interval(assistant, spotted["path"], interval, lang, spotted.get("times")):
                outs = [gr.skip()] * 5
                if step.stage == "motion":
                    outs[0] = files.save_image(request.session_hash if request else None,
                                               with_legend(step.analysis.mmc_map, mode=step.analysis.mmc_mode))
                elif step.stage == "evidence":
                    outs[1] = _au_list(step.evidence)
                elif step.stage == "reasoning":
                    outs[3] = [{"role": "assistant", "content": step.text}]
                elif step.stage == "done":
                    outs[2], outs[4] = step.result.answer.emotion or "unparsable", step.result
                    yield (f"Analysed {where} in {step.result.timings.get('total', 0):.2f} s.",) + tuple(outs)
                    continue
                yield (gr.skip(),) + tuple(outs)
        except MEUError as err:
            yield (f"⚠️ **Error:** {err}",) + cleared

    # Gradio passes the clicked cell to a parameter annotated gr.SelectData and the request to one annotated
    # gr.Request; gradio is imported in this function, so the (postponed, string) annotations are resolved here
    analyse.__annotations__["evt"] = gr.SelectData
    analyse.__annotations__["request"] = spot.__annotations__["request"] = gr.Request

    ask = _chat_handler(assistant, "Analyse an interval first: click a row of the table.")

    def spot_api(video: str):
        """Spot a long video; yields progress ({"done", "total"} frames) and last the intervals: expressions and
        distractors (blinks, speech, head moves) with frames, seconds, score, near_threshold and regions."""
        with files.api_request(video, "API spotting"):
            for update in spot_in_process(video, assistant.config.max_long_video_s,
                                          max_frames=assistant.config.max_long_frames):
                if update.result is None:
                    yield {"done": update.done, "total": update.total}
                else:
                    yield spot_summary(update.result)

    # its own lane: one spot at a time, in a child process, never ahead of or behind the short requests' lane
    spotting = file.upload(spot, file, outputs, api_name="spot_upload", api_visibility="private",
                           concurrency_limit=1, concurrency_id="long")
    gr.Button(visible=False).click(spot_api, file, gr.JSON(visible=False), api_name="spot", concurrency_limit=1,
                                   concurrency_id="long")
    analysing = table.select(analyse, [spotted_state, language],
                             [analysis_status, mmc, aus, emotion, chatbot, result_state], api_visibility="private",
                             concurrency_limit=concurrency, concurrency_id="work")
    for trigger in (question.submit, ask_btn.click):
        trigger(ask, [question, chatbot, result_state], [question, chatbot], api_visibility="private",
                concurrency_limit=concurrency, concurrency_id="work")
    # the video removed from its box: its timeline, table and analysis go too (follow-ups answered about it before)
    file.clear(lambda: ("No long video yet.", None, pd.DataFrame(columns=INTERVAL_COLUMNS), None, "") + cleared,
               outputs=outputs, api_visibility="private", cancels=[spotting, analysing])  # a spot still running stops
    return LongView(file=file, spot=spot, outputs=outputs)


def build_ui(assistant: Assistant, examples_dir: str | Path | None = None, concurrency: int = 1):
    """The whole page: the short-clip app (`build_app`) and the Long video view in two tabs. A video uploaded on the
    short-clip tab that is longer than a short clip (over --max-frames) is moved to the Long video view and spotted."""
    import gradio as gr

    from assistant.long_video import is_long, probe_video

    clip_app = build_app(assistant, examples_dir, concurrency)
    with gr.Blocks(title="MEU Assistant", delete_cache=(CACHE_SWEEP_S, CACHE_AGE_S)) as demo:
        with gr.Tabs(selected="clip") as views:
            with gr.Tab("Short clip", id="clip"):
                clip_app.render()
            with gr.Tab("Long video", id="long", elem_id="long-tab"):
                long_view = long_video_view(assistant, clip_app.session_files, concurrency)
        video = next(b for b in clip_app.blocks.values() if getattr(b, "elem_id", None) == "video-input")
        routed = gr.State(False)

        def route(path):
            try:
                long = bool(path) and is_long(probe_video(path), assistant.config.max_frames)
            except MEUError:  # not a readable video: the Analyse button explains it
                long = False
            if not long:
                return gr.skip(), gr.skip(), False
            return gr.Tabs(selected="long"), path, True

        def spot_routed(was_routed, path, request, progress=gr.Progress()):  # noqa: B008
            if not was_routed:
                yield (gr.skip(),) * len(long_view.outputs)
                return
            yield from long_view.spot(path, request, progress)

        spot_routed.__annotations__["request"] = gr.Request

        video.upload(route, video, [views, long_view.file, routed], api_visibility="private").then(
            spot_routed, [routed, long_view.file], long_view.outputs, api_visibility="private",
            concurrency_limit=1, concurrency_id="long")
    demo.session_files = clip_app.session_files
    quiet_input_refusals(demo)
    return demo


def interval_number(row_value, index, n: int) -> int:
    """The table row a click names (its "#" cell, else its position), checked: a crafted event must not analyse
    another interval or reach the client as a raw exception."""
    try:
        number = int((row_value or [index[0] + 1])[0])
    except (TypeError, ValueError, IndexError):
        raise FrameIndexError(f"The clicked row {row_value!r} names no interval; click one of the table's rows "
                              f"(1 to {n}).") from None
    if not 1 <= number <= n:
        raise FrameIndexError(f"There is no interval {number}; click one of the table's rows (1 to {n}).")
    return number


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def check_server_settings(ns) -> None:
    """The server's own flags, checked before anything starts: 0 workers hang every request, 0 sessions answer
    every request with HTTP 500, a port outside 1-65535 ends in a socket traceback, and so did a port in use or a
    host that is not this machine's (`check_listen`)."""
    if ns.concurrency < 1:
        raise ConfigError(f"--concurrency {ns.concurrency} must be at least 1 (analyses run at the same time).")
    if ns.queue_size < 1:
        raise ConfigError(f"--queue-size {ns.queue_size} must be at least 1 (requests waiting).")
    if ns.max_sessions < 1:
        raise ConfigError(f"--max-sessions {ns.max_sessions} must be at least 1 (sessions kept for follow-up "
                          "questions).")
    if not 1 <= ns.port <= 65535:
        raise ConfigError(f"--port {ns.port} must lie between 1 and 65535.")
    check_listen(ns.host, ns.port)


def check_listen(host: str, port: int) -> None:
    """The address is this machine's and the port free, said before the models load: the web server's own refusal is
    a traceback that blames the port for a bad host too. Every address the name resolves to is tried (`localhost` may
    resolve to ::1 first where IPv6 is off), as the web server would."""
    name = host.strip("[]")
    try:
        candidates = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise ConfigError(f"--host {host} is not an address or a name this machine can resolve "
                          f"({getattr(err, 'strerror', None) or err}); use 127.0.0.1 (this machine only) or 0.0.0.0 "
                          "(every interface).") from None
    failures = []
    for family, kind, proto, _, address in candidates:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server binds
                probe.bind(address)
                return
        except OSError as err:
            failures.append(err)
    if any(err.errno == errno.EADDRINUSE for err in failures):
        raise ConfigError(f"--port {port} on {host} is in use by another program; choose another --port or stop that "
                          "program.")
    if any(err.errno == errno.EADDRNOTAVAIL for err in failures):
        raise ConfigError(f"--host {host} is not an address of this machine; use 127.0.0.1 (this machine only), "
                          "0.0.0.0 (every interface) or one of its own addresses.")
    raise ConfigError(f"Cannot listen on {host}:{port} ({failures[0].strerror}); choose another --host or --port.")

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meu app", description="Start the MEU Assistant chat app (Gradio).")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--examples", default=str(DEFAULT_EXAMPLES),
                        help="folder of examples: clips (*.mp4) and image pairs (X_onset.png with X_apex.png); only "
                             "those files are served")
    parser.add_argument("--concurrency", type=int, default=min(2, os.cpu_count() or 1),
                        help="short analyses run at the same time (default: 2, or 1 on a one-core machine: on 2 cores "
                             "8 users ran at 2.47 requests/s against 1.85 with 1, and short requests kept p95 4.5 s "
                             "during a long spot against 5.8 s; benchmarks/app.py --load)")
    parser.add_argument("--queue-size", type=int, default=16, help="requests waiting at most (default: 16)")
    parser.add_argument("--max-sessions", type=int, default=256,
                        help="sessions whose last result is kept for follow-up questions, about 2 MB each; the oldest "
                             "is dropped first (default: 256)")
    calibration.add_argument(parser)
    config, ns = parse_assistant_config(argv, parser)
    check_server_settings(ns)
    calibration.apply(ns)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    assistant = Assistant(config)
    assistant.warm_up()
    demo = build_ui(assistant, ns.examples, ns.concurrency)
    demo.queue(max_size=ns.queue_size, default_concurrency_limit=ns.concurrency)
    clips, pairs = example_files(ns.examples)
    served = [str(p) for p in clips] + [str(p) for pair in pairs for p in pair]  # these files only, not the folder
    # SIGTERM (a service manager, `docker stop`, `kill`) takes the path Ctrl+C takes, so Gradio's shutdown empties
    # its cache; the default action would end the process with every upload left on disk
    signal.signal(signal.SIGTERM, _interrupt)
    release_periodically()  # freed analysis buffers go back to the system, so memory levels off under load
    print(f"MEU Assistant: http://{ns.host}:{ns.port}/  (backends: "
          + ", ".join(f"{k}={v}" for k, v in assistant.backends().items()) + ")", flush=True)
    try:
        demo.launch(server_name=ns.host, server_port=ns.port, share=False, show_error=True, inbrowser=False,
                    # larger uploads are refused before they are stored; short clips still stop at max_upload_mb
                    max_file_size=int(max(config.max_upload_mb, config.max_long_upload_mb) * 2**20),
                    state_session_capacity=ns.max_sessions,
                    allowed_paths=served or None, footer_links=["api"])
    finally:  # the files Gradio made for the page: the examples' copies and what its components wrote
        demo.session_files.close({p for b in demo.blocks.values() for p in getattr(b, "keep_in_cache", ())}
                                 | {p for made in demo.temp_file_sets for p in made})
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except MEUError as err:  # bad settings: one line, as `meu app` prints it
        raise SystemExit(f"error: {err}") from None
