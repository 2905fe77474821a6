"""``convnp info``: this machine as convnp sees it: CPU features, the kernel variant built, the plans so far."""
from __future__ import annotations

import os


def register(sub):
    p = sub.add_parser("info", help="CPU features, the kernel variant built, and the convolution plans so far",
                       description="Print the CPU model and features convnp looks at, which kernel variant it "
                                   "built (CONVNP_ISA forces one) and how, the planning mode (CONVNP_PLAN) and "
                                   "the plans measured on this machine so far.")
    p.add_argument("--plans", type=int, default=20, metavar="N", help="show at most N plans (default 20)")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np
    from .. import __version__, accel
    from ..accel import direct, planner
    from ..utils import build
    cpu = build.cpu_features()
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "neon", "asimd")
    print(f"convnp {__version__}, NumPy {np.__version__}")
    print(f"CPU: {cpu['model']} ({cpu['machine']}, {os.cpu_count()} cores)")
    print("features: " + (", ".join(f for f in wanted if f in cpu["flags"]) or "none of " + ", ".join(wanted)))
    print(f"kernel variants this CPU runs: {', '.join(build.supported_variants())}"
          + (f" (CONVNP_ISA={os.environ['CONVNP_ISA']})" if os.environ.get("CONVNP_ISA") else ""))
    if not accel.direct_enabled_for():
        reason = "switched off (CONVNP_ACCEL=0)" if not accel._state["enabled"] else direct.status()
        print(f"C kernels: not in use: {reason}")
    else:
        print(f"C kernels: {direct.variant()} variant, {direct.status()}")
    print(f"threads per kernel call: {direct.num_threads()}")
    print(f"planning mode: {planner.mode()} (CONVNP_PLAN); plan file: {planner.plan_file()}")
    plans = planner.plans()
    print(f"plans: {len(plans)}")
    for key, entry in list(plans.items())[:max(0, args.plans)]:
        times = ", ".join(f"{name} {ms:g} ms" for name, ms in entry.get("ms", {}).items())
        print(f"  {key}: {entry['provider']}" + (f"  ({times})" if times else ""))
    if len(plans) > args.plans:
        print(f"  ... {len(plans) - args.plans} more (--plans N)")
    return 0
