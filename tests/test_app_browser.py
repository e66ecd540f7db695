"""The app in a real browser: Debian Chromium driven by Playwright (never a downloaded browser).

One session walks the product's main path: a bad upload shows its error, a good upload gives the map, the AU list
and the emotion, a follow-up question gets an answer; then a synthetic long video goes to the Long video view, is
spotted (timeline and table), and one interval is analysed and discussed. Screenshots are kept under test-artifacts/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian chromium is missing: `make browser` (apt-get install chromium) installs it"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def _open(browser, app_server):
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_server.url)
    page.locator("#analyze-btn").wait_for()
    return page


@pytest.fixture(scope="module")
def page(browser, app_server):
    page = _open(browser, app_server)
    yield page
    page.close()


def _upload_and_analyse(page, path: Path) -> None:
    page.locator("#video-input input[type=file]").set_input_files(str(path))
    page.locator(f"#video-input td.filename[aria-label='{path.name}']").wait_for()
    page.locator("#analyze-btn").click()


def test_bad_then_good_upload_then_follow_up(page, app_server, tmp_path):
    from playwright.sync_api import expect

    errors: list[str] = []  # the page's own script errors (clearing the AU plot with None threw on each result)
    page.on("pageerror", lambda err: errors.append(str(err)))
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file, not a video\n" * 20)
    _upload_and_analyse(page, fake)
    status = page.locator("#status")
    expect(status).to_contain_text("Error", timeout=TIMEOUT_MS)
    expect(status).to_contain_text("notes.mp4")
    assert app_server.process.poll() is None, "the app went down after a bad upload"

    page.locator("#video-input button[aria-label='Clear']").first.click()
    clip = app_server.examples / "surprise_AU1_AU2.mp4"
    _upload_and_analyse(page, clip)
    expect(status).to_contain_text("Done in", timeout=TIMEOUT_MS)
    expect(page.locator("#emotion textarea")).to_have_value("surprise")
    au_text = page.locator("#au-list textarea").input_value()
    assert "AU1" in au_text and "AU2" in au_text
    page.wait_for_function(  # the map and the landmarks overlay are real, decoded images
        "() => { const imgs = document.querySelectorAll('#mmc-map img, #landmarks img');"
        " return imgs.length == 2 && Array.from(imgs).every(i => i.complete && i.naturalWidth >= 256); }")
    expect(page.locator("#chat")).to_contain_text("Micro-expression: surprise")
    expect(page.locator("#settings")).to_contain_text("template")
    page.wait_for_function(  # the AU plot is drawn once the run is over (set whole, never streamed)
        "() => document.querySelector('#au-plot canvas, #au-plot svg') !== null")

    page.locator("#question textarea").fill("Which AUs did you find, and how sure are you?")
    page.locator("#ask-btn").click()
    expect(page.locator("#chat")).to_contain_text("detector found", timeout=TIMEOUT_MS)

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "app_screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.locator("#video-input button[aria-label='Clear']").first.click()  # a second result replaces the first
    _upload_and_analyse(page, app_server.examples / "happiness_AU6_AU12.mp4")
    expect(page.locator("#emotion textarea")).to_have_value("happiness", timeout=TIMEOUT_MS)
    assert errors == []


def test_onset_and_apex_image_example_is_one_click_away(page):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Onset + apex images").click()
    page.locator("td[data-testid='dataset-cell-0-0'] img[src*='onset']").click()
    page.locator("#apex-image img").wait_for()
    page.locator("#analyze-btn").click()
    expect(page.locator("#status")).to_contain_text("apex frame 1, 2 frames", timeout=TIMEOUT_MS)
    expect(page.locator("#emotion textarea")).to_have_value("happiness")



def test_a_sessions_files_go_when_its_tab_closes(browser, app_server):
    """The images drawn for a session live in its own folder; closing the tab ends the session and removes it."""
    import time

    from playwright.sync_api import expect

    sessions = app_server.cache / "meu-sessions"
    before = set(sessions.iterdir()) if sessions.is_dir() else set()
    page = _open(browser, app_server)
    page.get_by_role("tab", name="Onset + apex images").click()
    page.locator("td[data-testid='dataset-cell-0-0'] img[src*='onset']").click()
    page.locator("#apex-image img").wait_for()
    page.locator("#analyze-btn").click()
    expect(page.locator("#status")).to_contain_text("Done in", timeout=TIMEOUT_MS)
    (mine,) = set(sessions.iterdir()) - before
    assert len(list(mine.glob("*.png"))) == 2  # the map and the landmarks overlay
    page.close()
    deadline = time.monotonic() + 30
    while mine.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not mine.exists(), "the session's folder outlived its tab"
    assert app_server.process.poll() is None


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """A synthetic long video (labelled synthetic) well over the test app's 60-frame short-clip limit."""
    from instruction_data.long_synth import LongSpec, make_long_video, write_long_video

    video = make_long_video(LongSpec(seconds=12, fps=30, frame_size=(320, 240), face_height_frac=0.7, n_micro=2,
                                     n_macro=1, seed=5))
    return write_long_video(video, tmp_path_factory.mktemp("long_video") / "interview.mp4")


def test_long_video_is_spotted_then_one_interval_analysed(page, app_server, long_video):
    from playwright.sync_api import expect

    from assistant.long_video import INTERVAL_COLUMNS

    page.get_by_role("tab", name="Video clip").click()
    clear = page.locator("#video-input button[aria-label='Clear']")
    if clear.count():  # the earlier tests leave their clip there
        clear.first.click()
    # no Analyse press: an upload over the short-clip limit (60 frames here) goes to the Long video view by itself
    page.locator("#video-input input[type=file]").set_input_files(str(long_video))
    expect(page.get_by_role("tab", name="Long video")).to_have_attribute("aria-selected", "true", timeout=TIMEOUT_MS)
    status = page.locator("#long-status")
    expect(status).to_contain_text("Spotted", timeout=TIMEOUT_MS)
    page.wait_for_function(  # the timeline is a real, decoded image
        "() => { const i = document.querySelector('#timeline img');"
        " return i && i.complete && i.naturalWidth >= 400; }")
    expect(page.locator("#intervals [data-testid='cell-0-0']")).to_have_text("1")  # the "#" cell of the first row
    # the first interval clear of the threshold: the one near it here (a 0.36 px AU20, score about 9.5 against 9)
    # read AU20 at 0.76 on one run and 0.41 on another of the same machine, and a follow-up's answer follows that
    near = INTERVAL_COLUMNS.index("near threshold")
    row = 0
    while row < 10 and page.locator(f"#intervals [data-testid='cell-{row}-{near}']").inner_text().strip():
        row += 1
    cell = page.locator(f"#intervals [data-testid='cell-{row}-0']")
    number = cell.inner_text().strip()
    kind = page.locator(f"#intervals [data-testid='cell-{row}-1']").inner_text().strip()
    assert kind in ("micro", "macro")
    cell.click()
    expect(page.locator("#long-analysis")).to_contain_text(f"Analysed interval {number}", timeout=TIMEOUT_MS)
    expect(status).to_contain_text("Spotted")  # the spotting summary stays
    page.wait_for_function(
        "() => { const i = document.querySelector('#long-mmc img'); return i && i.complete && i.naturalWidth >= 256; }")
    # drawn into the session's folder, which goes with the session (in Gradio's cache it outlived shutdown)
    assert "meu-sessions" in page.locator("#long-mmc img").get_attribute("src")
    expect(page.locator("#long-chat")).to_contain_text(f"{kind.capitalize()}-expression:")  # named as spotted
    assert page.locator("#long-emotion textarea").input_value()
    page.locator("#long-question textarea").fill("Which AUs did you find?")
    page.locator("#long-ask-btn").click()
    expect(page.locator("#long-chat")).to_contain_text("detector found", timeout=TIMEOUT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app_long_video.png"), full_page=True)
    # the video removed from its box takes its results with it (they stayed, and follow-ups answered about it)
    page.locator("#long-video-input button[aria-label='Clear']").first.click()
    expect(status).to_have_text("No long video yet.", timeout=TIMEOUT_MS)
    expect(page.locator("#long-analysis")).not_to_contain_text("Analysed interval")
    assert not page.locator("#long-emotion textarea").input_value()
    assert app_server.process.poll() is None


def test_a_long_video_upload_goes_when_its_tab_closes(browser, app_server):
    """The Long video tab holds its upload for the session (its intervals are analysed from it) and removes it when
    the session ends, as the Short clip tab does."""
    import time

    from playwright.sync_api import expect

    from instruction_data.long_synth import LongSpec, make_long_video, write_long_video

    video = make_long_video(LongSpec(seconds=4, fps=30, frame_size=(320, 240), face_height_frac=0.7, n_micro=1,
                                     n_macro=0, n_speech=0, n_head_turns=0, seed=6))
    path = write_long_video(video, app_server.cache.parent / "goodbye.mp4")
    page = _open(browser, app_server)
    page.get_by_role("tab", name="Long video").click()
    page.locator("#long-video-input input[type=file]").set_input_files(str(path))
    expect(page.locator("#long-status")).to_contain_text("Spotted", timeout=TIMEOUT_MS)
    (copy,) = app_server.cache.rglob("goodbye.mp4")
    page.close()
    deadline = time.monotonic() + 30
    while copy.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not copy.exists(), "the Long video upload outlived its tab"
    assert "session ended: its folder and 1 upload(s) removed" in app_server.log()
