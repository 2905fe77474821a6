"""The playground's JSON API, through FastAPI's test client and a live server (50 parallel requests)."""
import concurrent.futures

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("PIL")
from fastapi.testclient import TestClient  # noqa: E402

from convnp.serve.app import DEFAULT_CHECKPOINT, create_app  # noqa: E402
from convnp.serve.preprocess import ImageError, preprocess_upload  # noqa: E402
from serve_helpers import LiveServer, mnist_test_digit, png_bytes  # noqa: E402


@pytest.fixture(scope="module")
def app():
    return create_app()  # the SimpleConvNet checkpoint shipped in the package


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


def post(client, path, data, name="digit.png"):
    return client.post(path, files={"file": (name, data, "image/png")})


def test_shipped_checkpoint_classifies_real_test_digits(client):
    correct = 0
    for i in range(30):
        image, label = mnist_test_digit(i)
        r = post(client, "/api/predict", png_bytes(image))
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"class", "probabilities"}
        assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) - 1) < 1e-5
        assert body["class"] == int(np.argmax(body["probabilities"]))
        correct += body["class"] == label
    assert correct >= 28, f"only {correct}/30 test digits right through the upload path"


def test_features_returns_every_conv_and_pool_layer(client, app):
    image, _ = mnist_test_digit(0)
    body = post(client, "/api/features", png_bytes(image)).json()
    kinds = [layer["type"] for layer in body["layers"]]
    assert any("Conv" in k for k in kinds) and any("Pool" in k for k in kinds)
    conv = body["layers"][0]
    assert conv["shape"] == [30, 24, 24] and len(conv["maps"]) == 30
    assert np.asarray(conv["maps"][0]).shape == (24, 24)
    maps = np.asarray(conv["maps"])
    assert maps.min() >= 0 and maps.max() <= 1 and maps.std() > 0
    assert np.asarray(body["input"]).shape == (28, 28)


def test_info_lists_layers_and_filters(client):
    info = client.get("/api/info").json()
    assert info["layers"][0]["output_shape"] == [None, 30, 24, 24]
    assert len(info["filters"]) == 30 and np.asarray(info["filters"][0]).shape == (5, 5)
    assert "Total params" in info["summary"]


def test_saliency_and_gradcam_maps(client):
    image, _ = mnist_test_digit(1)
    body = post(client, "/api/saliency", png_bytes(image)).json()
    sal, cam = np.asarray(body["saliency"]), np.asarray(body["grad_cam"])
    assert sal.shape == (28, 28) and sal.max() == pytest.approx(1.0) and np.isfinite(cam).all()


def test_convolution_panel_matches_signal_correlation(client):
    from convnp.signal import correlate2d
    body = client.get("/api/convolution", params={"kernel": "sobel_x", "stride": 1, "padding": 1}).json()
    expected = correlate2d(np.asarray(body["input"]), np.asarray(body["kernel"]), mode="same")
    np.testing.assert_allclose(body["output"], expected, atol=1e-3)
    assert body["formula"].endswith("= 7")
    strided = client.get("/api/convolution", params={"kernel": "edge", "stride": 2, "padding": 0}).json()
    assert "(7 + 2*0 - 3) / 2 + 1 = 3" in strided["formula"] and np.asarray(strided["output"]).shape == (3, 3)
    bad = client.get("/api/convolution", params={"kernel": "nope"})
    assert bad.status_code == 422 and "unknown kernel" in bad.json()["detail"]


@pytest.mark.parametrize("data,status,words", [
    (b"", 400, "empty"),
    (b"this is not an image", 400, "not a readable image"),
    (None, 422, "no ink found"),          # a blank canvas
    ("huge", 413, "too large"),           # 5000 x 5000 pixels
])
def test_bad_uploads_get_clear_4xx(client, data, status, words):
    if data is None:
        data = png_bytes(np.zeros((280, 280)))
    elif data == "huge":
        data = png_bytes(np.zeros((5000, 5000)))
    for path in ("/api/predict", "/api/features"):
        r = post(client, path, data)
        assert r.status_code == status, r.text
        assert words in r.json()["detail"]


def test_request_size_limit(client):
    r = post(client, "/api/predict", b"\x89PNG" + b"0" * (6 * 1024 * 1024))
    assert r.status_code == 413 and "too large" in r.json()["detail"]


def test_missing_file_field_is_422(client):
    assert client.post("/api/predict").status_code == 422


def test_openapi_documents_predict(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/predict"]["post"]
    assert "multipart/form-data" in op["requestBody"]["content"]
    assert {"/api/features", "/api/saliency", "/api/convolution", "/api/info"} <= set(spec["paths"])


def test_preprocessing_matches_training_data_for_mnist_digits():
    for i in range(5):
        image, _ = mnist_test_digit(i)
        x = preprocess_upload(png_bytes(image))
        assert x.shape == (1, 1, 28, 28) and x.dtype == np.float32
        # an MNIST digit is already centred and scaled: preprocessing keeps it (almost) where it was
        assert np.corrcoef(x[0, 0].ravel(), image.ravel())[0, 1] > 0.9


def test_preprocessing_inverts_dark_ink_and_handles_rgba():
    paper = np.ones((100, 80))
    paper[20:80, 35:45] = 0.0  # a dark vertical bar on white paper
    x = preprocess_upload(png_bytes(paper))
    assert x[0, 0, 14, 14] > 0.5 and x[0, 0, 0, 0] == 0
    rgba = np.zeros((50, 50, 4))
    rgba[10:40, 20:30] = [1, 1, 1, 1]
    y = preprocess_upload(png_bytes(rgba, mode="RGBA"))
    assert y[0, 0, 14, 14] > 0.5
    with pytest.raises(ImageError, match="no ink found"):
        preprocess_upload(png_bytes(np.zeros((10, 10))))


def test_fifty_parallel_predictions_on_a_live_server(app):
    import httpx
    server = LiveServer(app)
    try:
        images = [mnist_test_digit(i) for i in range(10)]
        payloads = [png_bytes(img) for img, _ in images]

        def one(i):
            r = httpx.post(server.url + "/api/predict", files={"file": ("d.png", payloads[i % 10], "image/png")},
                           timeout=60)
            return r.status_code, r.json()["class"], images[i % 10][1]
        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(one, range(50)))
    finally:
        server.stop()
    assert all(status == 200 for status, _, _ in results)
    # identical inputs give identical answers under concurrency
    by_input = {}
    for i, (_, cls, _) in enumerate(results):
        by_input.setdefault(i % 10, set()).add(cls)
    assert all(len(v) == 1 for v in by_input.values())
    assert sum(cls == label for _, cls, label in results) >= 45


def test_default_checkpoint_is_shipped():
    import os
    assert os.path.getsize(DEFAULT_CHECKPOINT) < 4 * 1024 * 1024


def test_favicon_and_local_docs(client):
    import re
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in icon.content
    docs = client.get("/docs")
    assert docs.status_code == 200
    pages = {"/": client.get("/").text, "/docs": docs.text}
    for name, html in pages.items():
        refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', html) + re.findall(r'url:\s*["\']([^"\']+)', html)
        assert refs, name
        for ref in refs:
            assert not re.match(r"^(https?:)?//", ref), f"{name} loads {ref} from outside this machine"
            if ref.startswith("/") and not ref.startswith("/docs"):
                assert client.get(ref).status_code == 200, f"{name} refers to {ref}, which is not served"


def test_own_static_files_reference_no_external_url():
    import os
    import re
    from convnp.serve.app import STATIC_DIR
    for name in os.listdir(STATIC_DIR):
        text = open(os.path.join(STATIC_DIR, name), encoding="utf-8").read()
        # the SVG's xmlns is a name, not a download
        urls = [u for u in re.findall(r"https?://[^\s\"'<>)]+", text) if u != "http://www.w3.org/2000/svg"]
        assert not urls, f"{name}: {urls}"


def test_all_extra_holds_every_cpu_extra():
    import os
    import re
    text = open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "pyproject.toml")).read()
    section = text.split("[project.optional-dependencies]")[1].split("\n[")[0]
    extras = {m.group(1): set(re.findall(r'"([A-Za-z0-9_.-]+)', m.group(2)))
              for m in re.finditer(r"^([\w-]+) = \[(.*?)\]", section, re.S | re.M)}
    for name in ("plots", "images", "progress", "exchange", "fast", "serve"):
        assert extras[name] <= extras["all"], f"[all] lacks {extras[name] - extras['all']} of [{name}]"
