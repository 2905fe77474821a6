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
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "test-artifacts")
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
def browser():
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


def _open(browser, server, width, requests=None):
    page = browser.new_page(viewport={"width": width, "height": 1400})
    if requests is not None:
        page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelectorAll('#filters canvas').length > 0", timeout=30000)
    return page


@pytest.fixture(scope="module")
def page(browser, server):
    page = _open(browser, server, 1280)
    yield page
    page.close()


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


CANVAS_MEAN = """id => { const c = document.getElementById(id); const d = c.getContext('2d')
    .getImageData(0, 0, c.width, c.height).data; let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i];
    return s / (d.length / 4) / 255; }"""


def test_upload_shows_the_picture_on_the_canvas_and_a_failed_upload_clears_the_result(page, tmp_path):
    import numpy as np
    image, label = mnist_test_digit(3)
    paper = np.ones((240, 320))
    paper[10:38, 10:38] = 1 - image                 # a small dark 0 in the corner of a white page
    good = tmp_path / "page.png"
    good.write_bytes(png_bytes(paper))
    page.click("#clear")
    page.set_input_files("#upload", str(good))
    page.wait_for_function(f"document.getElementById('prediction').textContent === '{label}'", timeout=30000)
    assert page.evaluate(CANVAS_MEAN, "draw") > 0.7  # the white 4:3 page, letterboxed: not the old black canvas
    assert page.evaluate(CANVAS_MEAN, "preview") > 0.02
    assert "Uploaded: page.png" in page.locator("#source").text_content()
    card = page.locator("#input-card").bounding_box()

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG but not really")
    page.set_input_files("#upload", str(bad))
    page.wait_for_function("document.getElementById('message').textContent.length > 0", timeout=30000)
    message = page.locator("#message").text_content()
    assert message == "The upload is not a readable image: send a PNG, JPEG, GIF, BMP, TIFF or WebP file."
    assert page.locator("#prediction").text_content() == "–"   # no earlier answer left on screen
    assert page.locator("#bars .bar").count() == 0 and page.locator("#features canvas").count() == 0
    assert page.evaluate(CANVAS_MEAN, "preview") == 0 and page.evaluate(CANVAS_MEAN, "draw") == 0
    after = page.locator("#input-card").bounding_box()
    assert abs(after["width"] - card["width"]) < 1 and abs(after["height"] - card["height"]) < 40

    blank = tmp_path / "blank.png"
    blank.write_bytes(png_bytes(np.ones((50, 50))))
    page.set_input_files("#upload", str(blank))
    page.wait_for_function("document.getElementById('message').textContent.startsWith('No ink found')",
                           timeout=30000)


def test_filters_grid_has_full_rows_and_the_layer_table_is_a_table(page):
    tops = page.locator("#filters canvas").evaluate_all("els => els.map(e => Math.round(e.getBoundingClientRect().top))")
    rows = {t: tops.count(t) for t in tops}
    assert len(tops) == 30 and sorted(rows.values()) == [10, 10, 10]   # 3 rows of 10, not 29 + 1
    assert page.locator("#layer-table table tbody tr").count() >= 5
    assert "433,890" in page.locator("#layer-table tfoot").text_content()


def test_narrow_screen_and_only_local_requests(browser, server):
    requests = []
    narrow = _open(browser, server, 420, requests)
    try:
        width = narrow.evaluate("document.documentElement.scrollWidth")
        assert width <= 420, f"the page is {width} px wide at a 420 px viewport"
        rights = narrow.locator(".card").evaluate_all("els => els.map(e => e.getBoundingClientRect().right)")
        assert max(rights) <= 420
        narrow.goto(server.url + "/docs")
        narrow.wait_for_load_state("networkidle")  # Swagger UI (or the local page) has read /openapi.json
        narrow.wait_for_function("document.body.innerText.includes('/api/predict')", timeout=30000)
    finally:
        narrow.close()
    outside = [u for u in requests if not u.startswith(server.url) and not u.startswith("data:")]
    assert not outside, outside


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
