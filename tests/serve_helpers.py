"""Shared helpers for the playground tests: PNG bytes of MNIST digits, and a live uvicorn server."""
import io
import socket
import threading
import time

import numpy as np


def png_bytes(array01, mode="L"):
    from PIL import Image
    img = Image.fromarray((np.clip(array01, 0, 1) * 255).astype(np.uint8), mode=mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def mnist_test_digit(index):
    from convnp.data import load_mnist
    _, (x, t) = load_mnist()
    return x[index, 0], int(t[index])


class LiveServer:
    """uvicorn running ``app`` in a thread on a free localhost port (stopped by ``stop()``)."""

    def __init__(self, app):
        import uvicorn
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("uvicorn did not start within 20 s")
            time.sleep(0.05)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)
