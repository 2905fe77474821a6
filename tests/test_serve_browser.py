"""End to end in headless Chromium (Debian's package, driven by Playwright): draw, upload, see results.

.ci/run installs chromium; the screenshot is saved to test-artifacts/playground.png.
"""
import os
import shutil

import pytest

pytest.importorskip("fastapi")
playwright_sync = pytest.importorskip("playwright.sync_api")

from convnp.serve.app import create_app  # noqa: E402
from serve_helpers import LiveServer, mnist_test_digit, png_bytes  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "test-artifacts")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not os.path.exists(CHROMIUM):
    pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's 'chromium' package (.ci/run does)",
                pytrace=False)


@pytest.fixture(scope="module")
def server():
    live = LiveServer(create_app())
    yield live
    live.stop()


@pytest.fixture(scope="module")
def page(server):
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(server.url + "/")
        page.wait_for_function("document.querySelectorAll('#filters canvas').length > 0", timeout=30000)
        yield page
        browser.close()


def test_drawing_a_one_gives_a_prediction_and_feature_maps(page):
    box = page.locator("#draw").bounding_box()
    cx = box["x"] + box["width"] / 2
    page.mouse.move(cx, box["y"] + 40)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(cx + i * 0.5, box["y"] + 40 + i * 10)
    page.mouse.up()
    page.wait_for_function("document.getElementById('prediction').textContent !== '–'", timeout=30000)
    page.wait_for_function("document.querySelectorAll('#features canvas').length > 0", timeout=30000)
    assert page.locator("#bars .bar").count() == 10
    assert page.locator("#features .layer").count() >= 2
    assert page.locator("#prediction").text_content() == "1"


def test_uploading_a_real_mnist_digit_shows_its_class(page, tmp_path):
    image, label = mnist_test_digit(3)  # a 0 in the standard test set
    path = tmp_path / "digit.png"
    path.write_bytes(png_bytes(image))
    page.click("#clear")
    page.set_input_files("#upload", str(path))
    page.wait_for_function(f"document.getElementById('prediction').textContent === '{label}'", timeout=30000)
    page.wait_for_function("document.querySelectorAll('#features canvas').length > 0", timeout=30000)
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "playground.png")
    page.screenshot(path=shot, full_page=True)
    assert os.path.getsize(shot) > 10_000


def test_bad_upload_shows_a_message_not_a_crash(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"definitely not a PNG")
    page.set_input_files("#upload", str(bad))
    page.wait_for_function("document.getElementById('message').textContent.includes('not a readable image')",
                           timeout=30000)


def test_convolution_panel_shows_formula_and_slides(page):
    page.select_option("#kernel", "sobel_x")
    page.fill("#stride", "2")
    page.press("#stride", "Tab")  # blur: one change event
    page.wait_for_function("document.getElementById('formula').textContent.includes('/ 2 + 1 = 3')", timeout=10000)
    page.wait_for_load_state("networkidle")
    assert page.locator("#conv-output td.out-active").get_attribute("data-x") == "0"
    page.click("#step")
    page.wait_for_function("document.querySelector('#conv-output td.out-active').dataset.x === '1'", timeout=5000)
    # the 3x3 window moved by the stride: it now starts at column 2 of the input
    assert page.locator("#conv-input td.win").count() == 9
    assert min(int(x) for x in page.locator("#conv-input td.win").evaluate_all("els => els.map(e => e.dataset.x)")) == 2
