"""The CNN playground: a FastAPI app that runs a real convnp model.

Endpoints (OpenAPI description at ``/openapi.json``, interactive docs at ``/docs``):

* ``GET  /``                  the page (plain HTML/JS/canvas, no build step)
* ``GET  /api/info``          model name, layer table from ``summary()``, first-layer filters
* ``POST /api/predict``       multipart field ``file`` -> ``{"class": 7, "probabilities": [10 floats]}``
* ``POST /api/features``      same input -> prediction + feature maps of every conv and pool layer
* ``POST /api/saliency``      same input -> |d score / d input| and Grad-CAM maps (28x28, in [0, 1])
* ``GET  /api/convolution``   the "how convolution works" panel: a kernel slid over a small input

Requests are limited in size; bad uploads answer 4xx JSON ``{"detail": "..."}``. The model is loaded once
and shared; a lock serializes its use because layers keep per-call caches.
"""


import os
import threading

import numpy as np

from .preprocess import MAX_BYTES, ImageError, preprocess_upload

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
DEFAULT_CHECKPOINT = os.path.join(os.path.dirname(__file__), "simple_convnet_mnist.npz")


def _normalize01(a: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant map becomes all zeros (never NaN)."""
    a = np.asarray(a, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    return np.zeros_like(a) if hi - lo < 1e-12 else (a - lo) / (hi - lo)


def _rounded(a, digits=3):
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


class Playground:
    """The model and everything the endpoints compute with it (also usable without HTTP)."""

    def __init__(self, model, name: str = "model"):
        from ..nn.summary import summarize
        self.model = model.eval()
        self.name = name
        self.lock = threading.Lock()
        self.summary_text = summarize(model, (1, 28, 28))
        self.layers = self._layer_table()

    def _layer_table(self):
        from .. import no_grad
        from ..nn.summary import capture_activations
        with self.lock, no_grad():
            acts, _ = capture_activations(self.model, np.zeros((1, 1, 28, 28), np.float32))
        return [{"name": n, "type": type(m).__name__, "output_shape": [None] + list(a.shape[1:]),
                 "params": int(sum(p.size for p in m._parameters.values()))} for n, m, a in acts]

    def first_conv(self):
        from ..nn.layers import conv as conv_layers
        for name, m in self.model.named_modules():
            if isinstance(m, conv_layers.Conv2D):
                return name, m
        return None, None

    def predict(self, x):
        from .. import no_grad
        from ..functional.activation import softmax
        with self.lock, no_grad():
            logits = self.model(x)
        probs = softmax(np.asarray(logits, np.float64), axis=1)[0]
        return int(probs.argmax()), [float(p) for p in probs]

    def features(self, x, max_maps: int = 32):
        from .. import no_grad
        from ..functional.activation import softmax
        from ..nn.summary import capture_activations
        with self.lock, no_grad():
            acts, logits = capture_activations(self.model, x)
        probs = softmax(np.asarray(logits, np.float64), axis=1)[0]
        layers = []
        for name, module, a in acts:
            kind = type(module).__name__
            if a.ndim != 4 or not ("Conv" in kind or "Pool" in kind):
                continue
            maps = [_rounded(_normalize01(a[0, c]), 3) for c in range(min(a.shape[1], max_maps))]
            layers.append({"name": name, "type": kind, "shape": list(a.shape[1:]), "maps": maps})
        return {"class": int(probs.argmax()), "probabilities": [float(p) for p in probs], "layers": layers}

    def filters(self):
        name, conv = self.first_conv()
        if conv is None:
            return {"layer": None, "filters": []}
        w = np.asarray(conv.weight.data)
        return {"layer": name, "shape": list(w.shape),
                "filters": [_rounded(_normalize01(w[o].mean(axis=0)), 3) for o in range(w.shape[0])]}

    def saliency(self, x):
        from ..viz.saliency import grad_cam, saliency
        with self.lock:
            sal = saliency(self.model, x)
            cam = grad_cam(self.model, x)
        sal = np.asarray(sal).reshape(-1, 28, 28)[0]
        cam = np.asarray(cam).reshape(-1, *np.asarray(cam).shape[-2:])[0]
        return {"saliency": _rounded(_normalize01(sal)), "grad_cam": _rounded(_normalize01(cam))}


KERNELS = {
    "edge": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "blur": [[1 / 9] * 3] * 3,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
}


def convolution_demo(kernel="edge", stride=1, padding=0, size=7, learned=None):
    """A kernel slid over a small input: the input, the kernel, the output and the size formula."""
    from ..functional.conv import conv2d_forward
    if kernel == "learned":
        if learned is None:
            raise ImageError("this model has no convolution layer to take a learned filter from")
        k = np.asarray(learned, np.float64)
    elif kernel in KERNELS:
        k = np.asarray(KERNELS[kernel], np.float64)
    else:
        raise ImageError(f"unknown kernel {kernel!r}; choose one of {', '.join(list(KERNELS) + ['learned'])}", 422)
    if not (1 <= stride <= 4) or not (0 <= padding <= 3) or not (3 <= size <= 12):
        raise ImageError(f"stride must be 1..4, padding 0..3 and size 3..12 (got {stride}, {padding}, {size})", 422)
    fh = k.shape[0]
    if size + 2 * padding < fh:
        raise ImageError(f"the padded input ({size}+2*{padding}) is smaller than the {fh}x{fh} kernel", 422)
    yy, xx = np.mgrid[:size, :size]
    image = ((xx >= size // 3) & (xx < size - size // 3) | (yy == size // 2)).astype(np.float64)
    out, _ = conv2d_forward(image[None, None], k[None, None], None, stride=stride, padding=padding)
    oh = (size + 2 * padding - fh) // stride + 1
    formula = f"OH = (H + 2P - FH) / S + 1 = ({size} + 2*{padding} - {fh}) / {stride} + 1 = {oh}"
    exact = (size + 2 * padding - fh) % stride == 0
    return {"input": image.tolist(), "kernel": _rounded(k, 4), "output": _rounded(out[0, 0], 3),
            "stride": stride, "padding": padding, "formula": formula + ("" if exact else " (rounded down)")}


def create_app(model=None, checkpoint: str | None = None, name: str | None = None, host: str | None = None,
               body_timeout: float = 10.0):
    """Build the FastAPI app around ``model`` (or the model in ``checkpoint``, default: the shipped one).

    ``host``: the address the server listens on; a loopback one turns on the Host-header check (see
    :mod:`convnp.serve.guard`). ``body_timeout``: seconds allowed between pieces of a request body.
    """
    try:
        from fastapi import FastAPI, File, HTTPException, Request, UploadFile
        from fastapi.responses import FileResponse, JSONResponse
        from fastapi.staticfiles import StaticFiles
        from starlette.concurrency import run_in_threadpool
    except ImportError as e:
        raise RuntimeError('convnp serve needs the web extra: pip install "convnp[serve]"') from e
    if model is None:
        from .. import load
        path = checkpoint or DEFAULT_CHECKPOINT
        model = load(path)
        name = name or os.path.basename(path)
    play = Playground(model, name or type(model).__name__)
    app = FastAPI(title="convnp playground", version="1.0", docs_url=None, redoc_url=None,
                  description="Draw a digit and watch every layer of a convnp CNN respond.")
    app.state.playground = play
    from .docs import add_docs_routes
    add_docs_routes(app)  # /docs and /favicon.ico from this machine (no CDN)

    from .guard import LOOPBACK_HOSTS, RequestGuard
    # body counted as it arrives (chunked uploads too), Host checked when bound to localhost, slow bodies 408
    app.add_middleware(RequestGuard, max_body=MAX_BYTES + 64 * 1024, loopback_only=host in LOOPBACK_HOSTS,
                       body_timeout=body_timeout)

    async def read_input(file: UploadFile):
        data = await file.read(MAX_BYTES + 1)
        try:  # decoding a large image takes a while: off the event loop, so other requests keep flowing
            return await run_in_threadpool(preprocess_upload, data)
        except ImageError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(os.path.join(STATIC_DIR, "index.html"))

    @app.get("/api/info", summary="Model name, layer table and first-layer filters")
    def info():
        return {"name": play.name, "summary": play.summary_text, "layers": play.layers, **play.filters()}

    @app.post("/api/predict", summary="Classify an image (multipart field 'file')")
    async def predict(file: UploadFile = File(...)):
        x = await read_input(file)
        cls, probs = await run_in_threadpool(play.predict, x)
        return {"class": cls, "probabilities": probs}

    @app.post("/api/features", summary="Prediction plus the feature maps of every conv and pool layer")
    async def features(file: UploadFile = File(...)):
        x = await read_input(file)
        out = await run_in_threadpool(play.features, x)
        out["input"] = _rounded(x[0, 0], 3)
        return out

    @app.post("/api/saliency", summary="Saliency (|d score / d input|) and Grad-CAM maps for the prediction")
    async def saliency(file: UploadFile = File(...)):
        x = await read_input(file)
        return await run_in_threadpool(play.saliency, x)

    @app.get("/api/convolution", summary="Slide a kernel over a small input: output and size formula")
    def convolution(kernel: str = "edge", stride: int = 1, padding: int = 0, size: int = 7, filter_index: int = 0):
        learned = None
        if kernel == "learned":
            filt = play.filters()["filters"]
            if filt:
                _, conv = play.first_conv()
                w = np.asarray(conv.weight.data)
                learned = w[filter_index % w.shape[0]].mean(axis=0)
        try:
            return convolution_demo(kernel, stride, padding, size, learned)
        except ImageError as e:
            raise HTTPException(status_code=e.status, detail=str(e)) from None

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
