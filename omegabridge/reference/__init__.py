"""The torch reference of every formula in bridge-math.md: the oracle the kernels are tested against.

Plain, readable and float64-capable, on any device; the fallback where no fused kernel runs.

* ``posterior_mean(z, table, s)``: m(z, s), the mean of N(z, s I) restricted to the domain;
* ``step``: z + db [(m(z, s) - z)/s + f] + sqrt(db) xi, with xi from the shared Philox stream;
* ``bridge_step``: the bridge solver's step towards the data prediction m + s f (omegabridge/solvers.py);
* ``final_step``: the exact endpoint law N(z + s f, s I) restricted to the domain;
* ``bridge_target``: Z_t of the x-bridge and the regression target (x - m(Z_t, s)) / s;
* ``oracle_drift``: the exact learned drift of a known discrete target (samplers are measured with it).

Example:
    >>> import torch, omegabridge as ob
    >>> from omegabridge import reference
    >>> m = reference.posterior_mean(torch.tensor([[-3.0], [2.0]]), ob.HalfLine(low=0.0).segment_table(), 1.0)
    >>> bool((m >= 0).all())
    True
"""

from omegabridge.core.segments import membership, project
from omegabridge.reference.last_step import (
    LATTICE_DRAW_CORRECTIONS,
    final_step,
    lattice_draw,
    lattice_euler_maclaurin_draw,
)
from omegabridge.reference.oracle import oracle_drift
from omegabridge.reference.posterior import (
    LATTICE_OUTSIDE_RATE,
    LATTICE_WINDOW_LIMIT,
    LATTICE_WINDOW_SIGMAS,
    interval_mean,
    lattice_euler_maclaurin_mean,
    lattice_mean,
    lattice_uses_euler_maclaurin,
    lower_halfline_mean,
    posterior_mean,
)
from omegabridge.reference.step import bridge_step, step
from omegabridge.reference.target import bridge_target

__all__ = [
    "posterior_mean", "step", "bridge_step", "final_step", "bridge_target", "oracle_drift", "membership", "project", "interval_mean",
    "lower_halfline_mean", "lattice_mean", "lattice_euler_maclaurin_mean", "lattice_uses_euler_maclaurin",
    "lattice_draw", "lattice_euler_maclaurin_draw", "LATTICE_WINDOW_SIGMAS", "LATTICE_WINDOW_LIMIT",
    "LATTICE_OUTSIDE_RATE", "LATTICE_DRAW_CORRECTIONS",
]
