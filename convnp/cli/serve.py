"""``convnp serve [CKPT]``: the browser playground on localhost."""
from __future__ import annotations

from .validate import port_number, positive_float


def register(sub):
    p = sub.add_parser("serve", help="start the interactive CNN playground in the browser")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="a checkpoint or saved model (default: the SimpleConvNet shipped with convnp)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: localhost only; "
                                                       "on localhost the Host header must name localhost)")
    p.add_argument("--port", type=port_number, default=8000, help="TCP port, 0 = any free port (default 8000)")
    p.add_argument("--header-timeout", type=positive_float, default=10.0, metavar="S",
                   help="seconds a client may take to send a request's headers (default 10)")
    p.add_argument("--body-timeout", type=positive_float, default=10.0, metavar="S",
                   help="seconds allowed between pieces of a request body (default 10)")
    p.set_defaults(func=run)


def run(args) -> int:
    import os
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise RuntimeError('convnp serve needs the web extra: pip install "convnp[serve]"') from None
    if args.checkpoint is not None and not os.path.exists(args.checkpoint):
        raise FileNotFoundError(f"no such checkpoint: {args.checkpoint}")
    from ..serve.app import create_app
    from ..serve.server import serve
    app = create_app(checkpoint=args.checkpoint, host=args.host, body_timeout=args.body_timeout)
    serve(app, args.host, args.port, header_timeout=args.header_timeout)
    return 0
