"""Run under ``mpiexec -n 2``: rank 1 raises while rank 0 waits in an all-reduce. With the
abort-on-error excepthook the whole job must end quickly with a non-zero exit status; without
it rank 0 would wait forever. ``exit`` as the first argument makes rank 1 leave with
``sys.exit(abort_if_failed(3))`` instead, as a CLI that catches its errors and returns a status does."""
import sys
import time

import numpy as np

from convnp.distributed import abort_if_failed, get_world

world = get_world()
mode = sys.argv[1] if len(sys.argv) > 1 else "raise"
if world.rank == 1:
    time.sleep(0.2)
    if mode == "exit":
        sys.exit(abort_if_failed(3))
    raise RuntimeError("deliberate failure on rank 1")
world.allreduce_sum(np.ones(3))  # rank 0 waits here for rank 1, which never comes
print("rank 0 finished the all-reduce: the failure did not abort the job", flush=True)
