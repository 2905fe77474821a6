"""The one digit-image pipeline (convnp.data.images) and the commands that use it.

The accuracy test re-draws all 10,000 MNIST test digits the ways people save them (small in a corner of a
large page, black on white JPEG, transparent background, non-square canvas, light noise; see digit_pages.py),
runs ``convnp predict`` once on the folder with the shipped model, and asks the playground API about a
sample of the same files.
"""
import io
import os
import re

import numpy as np
import pytest

pytest.importorskip("PIL")

from convnp.cli import main  # noqa: E402
from convnp.data import load_mnist  # noqa: E402
from convnp.data.images import NoInkError, digit_to_mnist, load_digit, read_image, to_gray  # noqa: E402
from digit_pages import STYLES, write_pages  # noqa: E402

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "convnp", "serve", "simple_convnet_mnist.npz")


def _ink_box(x):
    rows, cols = np.nonzero(x.any(axis=1))[0], np.nonzero(x.any(axis=0))[0]
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def _centre(x):
    yy, xx = np.mgrid[:x.shape[0], :x.shape[1]]
    return (yy * x).sum() / x.sum(), (xx * x).sum() / x.sum()


def _png(array, mode):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------- the pipeline itself
@pytest.mark.parametrize("picture,words", [
    (np.zeros((40, 30)), "no ink found in the 30x40 picture"),
    (np.full((20, 20), 0.7), "blank or all one shade"),
    (np.full((0, 5), 0.0), "no ink found"),
])
def test_blank_and_uniform_pictures_say_no_ink(picture, words):
    with pytest.raises(NoInkError, match=re.escape(words)):
        digit_to_mnist(picture)


def test_nan_pictures_say_no_ink_and_count_the_bad_pixels():
    pic = np.zeros((10, 10))
    pic[2:8, 4] = 1.0
    pic[0, :3] = np.nan
    with pytest.raises(NoInkError, match="3 NaN or infinite pixels"):
        digit_to_mnist(pic)


def test_output_is_mnist_shaped_20px_box_centre_of_mass_in_the_middle():
    page = np.ones((300, 500))                      # white, non-square page
    page[30:130, 400:450] = 0.0                     # a dark 100x50 bar near the top-right corner
    x = digit_to_mnist(page)
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1
    assert x[0, 0, 0] == 0                          # background is black, ink is white (MNIST's polarity)
    h, w = _ink_box(x[0] > 0.5)
    assert h == 20 and 9 <= w <= 11                 # longer side 20 px, aspect ratio kept (not stretched)
    cy, cx = _centre(x[0])
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_mnist_digits_pass_through_almost_unchanged():
    _, (xt, _) = load_mnist()
    for i in range(20):
        out = digit_to_mnist(xt[i, 0])[0]
        assert np.corrcoef(out.ravel(), xt[i, 0].ravel())[0, 1] > 0.9


def test_lone_noise_specks_do_not_stretch_the_crop():
    page = np.zeros((200, 200))
    page[80:120, 95:105] = 1.0                      # a 40x10 stroke
    page[3, 3] = page[190, 190] = 1.0               # two isolated specks far away
    h, w = _ink_box(digit_to_mnist(page)[0] > 0.5)
    assert h == 20 and w <= 6


def test_transparent_background_is_flattened_for_dark_and_light_strokes():
    dark = np.zeros((60, 60, 4))
    dark[10:50, 25:35, 3] = 1.0                     # black ink on transparent (hidden colour black too)
    light = np.zeros((60, 60, 4))
    light[10:50, 25:35] = 1.0                       # white ink on transparent
    for rgba in (dark, light):
        assert np.allclose(np.unique(to_gray(rgba)), [0, 1])
        x = digit_to_mnist(rgba)[0]
        assert x[14, 14] > 0.9 and x[0, 0] == 0


def test_invert_flag_forces_the_polarity():
    light = np.zeros((50, 50))
    light[10:40, 20:30] = 1.0                       # white bar on black
    paper = 1.0 - light                             # black bar on white
    np.testing.assert_array_equal(digit_to_mnist(light, invert="no"), digit_to_mnist(light))
    np.testing.assert_array_equal(digit_to_mnist(paper, invert="yes"), digit_to_mnist(paper))
    np.testing.assert_allclose(digit_to_mnist(paper), digit_to_mnist(light), atol=1e-6)
    for pic, invert in ((light, "yes"), (paper, "no")):  # the wrong polarity: the page is the "ink"
        with pytest.raises(NoInkError, match="no ink found"):
            digit_to_mnist(pic, invert=invert)
    with pytest.raises(ValueError, match="invert must be auto, yes or no, got 'maybe'"):
        digit_to_mnist(light, invert="maybe")


def test_float_tiff_in_unit_range_and_16_bit_png_are_read_with_their_values(tmp_path):
    from PIL import Image
    pic = np.zeros((40, 40), np.float32)
    pic[5:35, 18:22] = 0.8
    Image.fromarray(pic, mode="F").save(tmp_path / "f.tif")
    np.testing.assert_allclose(read_image(str(tmp_path / "f.tif")), pic, atol=1e-6)
    Image.fromarray((pic * 65535).astype(np.uint16)).save(tmp_path / "i16.png")
    np.testing.assert_allclose(read_image(str(tmp_path / "i16.png")), pic, atol=1e-4)
    assert load_digit(str(tmp_path / "f.tif"))[0, 14, 14] > 0.9


def test_unreadable_and_blank_files_are_named(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="notes.png is not a readable image"):
        load_digit(str(bad))
    blank = tmp_path / "blank.png"
    blank.write_bytes(_png(np.full((30, 30), 255, np.uint8), "L"))
    with pytest.raises(NoInkError, match="blank.png: no ink found"):
        load_digit(str(blank))


# ---------------------------------------------------------------------------- the commands and the playground
@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """All 10,000 MNIST test digits re-drawn as files (about 10 s)."""
    _, (xt, tt) = load_mnist()
    folder = tmp_path_factory.mktemp("pages")
    paths = write_pages(str(folder), xt[:, 0], tt, seed=0)
    return str(folder), paths, tt


@pytest.fixture(scope="module")
def predicted(pages, tmp_path_factory):
    """``convnp predict SHIPPED FOLDER`` once: {path: class}."""
    import contextlib
    folder, paths, _ = pages
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["predict", SHIPPED, folder]) == 0
    answers = {}
    for line in out.getvalue().splitlines():
        path, rest = line.rsplit(": ", 1)
        answers[path] = int(rest.split(" ")[0])
    return answers


def test_redrawn_mnist_test_set_through_convnp_predict(pages, predicted):
    folder, paths, labels = pages
    assert len(paths) == 10_000 and sorted(predicted) == sorted(paths)
    pred = np.array([predicted[p] for p in paths])
    accuracy = float((pred == labels).mean())
    by_style = {s: float((pred[k::5] == labels[k::5]).mean()) for k, s in enumerate(STYLES)}
    print(f"re-drawn MNIST test set through convnp predict: {accuracy:.2%}", by_style)
    assert accuracy >= 0.985, by_style
    assert min(by_style.values()) >= 0.975, by_style


def test_playground_api_gives_the_same_answers_for_the_same_files(pages, predicted):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from convnp.serve.app import create_app
    _, paths, _ = pages
    client = TestClient(create_app())
    sample = paths[::40]  # 250 files, 50 of each style
    for path in sample:
        with open(path, "rb") as f:
            r = client.post("/api/predict", files={"file": (os.path.basename(path), f.read())})
        assert r.status_code == 200, r.text
        assert r.json()["class"] == predicted[path], path


def test_evaluate_on_a_folder_of_class_subfolders(pages, tmp_path, capsys):
    _, paths, labels = pages
    for path, label in list(zip(paths, labels))[:300]:
        os.makedirs(tmp_path / str(label), exist_ok=True)
        os.link(path, tmp_path / str(label) / os.path.basename(path))
    assert main(["evaluate", SHIPPED, "--images", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    m = re.search(r"on the images in .* \(300 images\): accuracy ([\d.]+)%", out)
    assert m, out
    assert float(m.group(1)) >= 97.0


def test_evaluate_images_folder_errors(tmp_path, capsys):
    assert main(["evaluate", SHIPPED, "--images", str(tmp_path / "nope")]) == 1
    assert "--images: no such folder" in capsys.readouterr().err
    (tmp_path / "seven").mkdir()
    (tmp_path / "seven" / "a.png").write_bytes(_png(np.zeros((5, 5), np.uint8), "L"))
    assert main(["evaluate", SHIPPED, "--images", str(tmp_path)]) == 1
    assert "is not a class index or one of the class names" in capsys.readouterr().err


def test_predict_reports_blank_files_and_keeps_going(pages, tmp_path, capsys):
    _, paths, labels = pages
    blank = tmp_path / "blank.png"
    blank.write_bytes(_png(np.full((30, 30), 255, np.uint8), "L"))
    assert main(["predict", SHIPPED, str(blank), paths[0]]) == 1
    captured = capsys.readouterr()
    assert f"{paths[0]}: {labels[0]} (" in captured.out
    assert f"error: {blank}: no ink found" in captured.err
    assert "1 image of 2 could not be classified" in captured.err
    assert main(["predict", SHIPPED, str(blank)]) == 1
    assert "the image could not be classified" in capsys.readouterr().err


def test_predict_names_missing_files_before_loading_the_model(tmp_path, capsys, monkeypatch):
    import convnp.io.checkpoint as checkpoint

    def must_not_load(*a, **k):
        raise AssertionError("the model was loaded before the files were checked")
    monkeypatch.setattr(checkpoint, "load_checkpoint", must_not_load)
    assert main(["predict", str(tmp_path / "no_model.npz"), str(tmp_path / "missing.png")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["predict", SHIPPED, str(tmp_path / "missing.png")]) == 1
    assert "image not found" in capsys.readouterr().err
