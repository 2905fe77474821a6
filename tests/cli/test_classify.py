"""The classic workflow: preprocess a photo, run a zoo model with weights from a file, decode the top-5
ImageNet classes; the CLI commands; bad images."""
import numpy as np
import pytest

from convnp import models
from convnp.cli import main
from convnp.models.imagenet import (CAFFE_MEAN_BGR, TORCH_MEAN, TORCH_STD, decode_predictions,
                                    imagenet_class_names, imagenet_wnids, preprocess_imagenet)

Image = pytest.importorskip("PIL.Image")


def test_class_names_are_the_standard_list():
    names = imagenet_class_names()
    assert len(names) == 1000 and len(set(imagenet_wnids())) == 1000
    assert names[0] == "tench, Tinca tinca" and imagenet_wnids()[0] == "n01440764"
    assert names[281] == "tabby, tabby cat" and names[999].startswith("toilet tissue")
    assert imagenet_class_names(short=True)[207] == "golden retriever"
    assert imagenet_wnids() == sorted(imagenet_wnids())  # ImageNet-1k indices follow sorted WordNet ids


def _photo(w=300, h=200, mode="RGB"):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").convert(mode)


def test_preprocess_torch_resize_crop_normalize():
    img = _photo(300, 200)
    x = preprocess_imagenet(img)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    # reference: shorter side 200 -> 256 (384x256), center crop 224 at (80, 16), then mean/std
    ref = np.asarray(img.resize((384, 256), Image.BILINEAR).crop((80, 16, 304, 240)), np.float64) / 255
    ref = ((ref - TORCH_MEAN) / TORCH_STD).transpose(2, 0, 1)
    np.testing.assert_allclose(x[0], ref, rtol=1e-5, atol=1e-5)


def test_preprocess_caffe_is_bgr_minus_mean():
    img = Image.new("RGB", (256, 256), (10, 20, 30))
    x = preprocess_imagenet(img, mode="caffe")
    np.testing.assert_allclose(x[0, :, 100, 100], np.array([30, 20, 10]) - np.array(CAFFE_MEAN_BGR), rtol=1e-5)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "1", "LA"])
def test_other_image_modes_are_converted(mode, tmp_path):
    if mode == "I;16":
        img = Image.fromarray(np.full((240, 240), 65535, np.uint16))
        assert img.mode.startswith("I;16")
        x = preprocess_imagenet(img)
        np.testing.assert_allclose(x[0, :, 5, 5], (1 - np.array(TORCH_MEAN)) / TORCH_STD, rtol=1e-5)  # white
        return
    img = _photo(260, 250).convert(mode)
    path = tmp_path / ("x.png" if mode != "CMYK" else "x.jpg")
    img.save(path)
    assert preprocess_imagenet(path).shape == (1, 3, 224, 224)


def test_transparent_pixels_become_white():
    img = Image.new("RGBA", (240, 240), (0, 0, 0, 0))
    x = preprocess_imagenet(img)
    np.testing.assert_allclose(x[0, :, 0, 0], (1 - np.array(TORCH_MEAN)) / TORCH_STD, rtol=1e-5)


def test_bad_images(tmp_path):
    with pytest.raises(ValueError, match=r"the image is 20x10 pixels, too small: the shorter side must be at least 32"):
        preprocess_imagenet(Image.new("RGB", (20, 10)))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read .*bad.jpg as an image"):
        preprocess_imagenet(bad)
    with pytest.raises(FileNotFoundError, match="no such image file"):
        preprocess_imagenet(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="mode must be 'torch' or 'caffe'"):
        preprocess_imagenet(_photo(), mode="tf")
    with pytest.raises(ValueError, match=r"expected an image .* got shape \(2, 3, 4, 5\)"):
        preprocess_imagenet(np.zeros((2, 3, 4, 5)))


def test_decode_predictions():
    p = np.zeros((2, 1000))
    p[0, [5, 281, 7]] = [0.2, 0.7, 0.1]
    p[1, 999] = 1.0
    out = decode_predictions(p, top=3)
    assert [r[1] for r in out[0]] == ["tabby, tabby cat", "electric ray, crampfish, numbfish, torpedo",
                                      "cock"]
    assert out[0][0] == ("n02123045", "tabby, tabby cat", 0.7) and out[1][0][0] == "n15075141"
    assert len(decode_predictions(p[0])) == 1
    with pytest.raises(ValueError, match=r"expected probabilities of shape \(N, 1000\).* got shape \(2, 10\)"):
        decode_predictions(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="top must be between 1 and 1000"):
        decode_predictions(p, top=0)


def test_classify_pipeline_with_torch_weights_matches_torch(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from zoo_torch_refs import TResNet, randomize_bn
    torch.manual_seed(0)
    ref = randomize_bn(TResNet()).eval()
    pth = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), pth)
    photo = tmp_path / "photo.png"
    _photo(320, 240).save(photo)
    from convnp.cli.zoo import classify
    rows = classify([str(photo)], "resnet18", str(pth), top=5)[0]
    with torch.no_grad():
        probs = torch.softmax(ref(torch.from_numpy(preprocess_imagenet(photo))), 1)[0].numpy()
    top = np.argsort(-probs)[:5]
    assert [r[0] for r in rows] == [imagenet_wnids()[i] for i in top]
    np.testing.assert_allclose([r[2] for r in rows], probs[top], rtol=1e-3)
    # the command line, via the safetensors converted by `convnp convert`
    st = tmp_path / "resnet18.safetensors"
    assert main(["convert", str(pth), str(st)]) == 0
    assert main(["classify", str(photo), "--model", "resnet18", "--weights", str(st), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "wrote 122 arrays" in out and imagenet_class_names()[top[0]] in out and "1." in out and "4." not in out
    m = models.resnet18(weights=str(st))
    np.testing.assert_array_equal(m.fc.weight.data, ref.fc.weight.detach().numpy())


def test_classify_cli_reports_wrong_weights(tmp_path, capsys):
    from convnp.io.weights import save_weights
    w = tmp_path / "r20.npz"
    save_weights(models.resnet20_cifar(seed=0), w)
    photo = tmp_path / "p.png"
    _photo().save(photo)
    assert main(["classify", str(photo), "--model", "resnet18", "--weights", str(w)]) == 1
    err = capsys.readouterr().err
    assert "r20.npz does not fit ResNet" in err and "keys missing from the file" in err
