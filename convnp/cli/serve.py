"""``convnp serve [CKPT]``: the browser playground on localhost."""
from __future__ import annotations


def register(sub):
    p = sub.add_parser("serve", help="start the interactive CNN playground in the browser")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="a checkpoint or saved model (default: the SimpleConvNet shipped with convnp)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: localhost only)")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=run)


def run(args) -> int:
    import os
    try:
        import uvicorn
    except ImportError:
        raise RuntimeError('convnp serve needs the web extra: pip install "convnp[serve]"') from None
    if args.checkpoint is not None and not os.path.exists(args.checkpoint):
        raise FileNotFoundError(f"no such checkpoint: {args.checkpoint}")
    from ..serve.app import create_app
    app = create_app(checkpoint=args.checkpoint)
    print(f"convnp playground on http://{args.host}:{args.port}/  (Ctrl-C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
