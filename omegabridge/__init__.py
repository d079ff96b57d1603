"""omegabridge: diffusion bridges on constrained domains, with fused kernels.

Every sample lands in the domain exactly: a closed-form singular drift from
Doob's h-transform (Liu, Wu, Ye, Liu, ICLR 2023) plus a learned neural drift.

The package in layers, each importing only from the ones above it in this list:
``errors``, ``files`` and ``checksums``; ``core`` (domains, segment table, schedules, noise, special
functions); ``reference`` (the torch oracle); ``ops`` (the fused ops, their validation,
the backend registry and the backends); ``bridge`` (``Bridge``) and ``solvers`` (its samplers); ``models``; ``training``;
``tabular`` and ``fields``; ``demos``; ``cli``.

Example:
    >>> import omegabridge as ob
    >>> domain = ob.Product([ob.Interval(-1.0, 1.0), ob.HalfLine(low=0.0), ob.Categorical(4)])
    >>> bridge = ob.Bridge(domain, ob.schedules.Exp(a=3.0, b=1.0), steps=50)
    >>> x = bridge.sample(None, n=8, seed=0, progress=False)
    >>> bool(domain.contains(x).all())
    True
"""

import sys

from omegabridge.version import __version__
from omegabridge import ops, reference
from omegabridge.core import schedules
from omegabridge.core.domains import (
    Binary,
    Categorical,
    Domain,
    HalfLine,
    Interval,
    Lattice,
    Product,
    Real,
    Sphere,
)
from omegabridge.core.segments import SegmentTable
from omegabridge.errors import (
    BackendUnavailableError,
    CheckpointError,
    DomainError,
    ModelOutputError,
    NotFittedError,
    OutputLockedError,
    SchemaError,
    TableFileError,
    TrainingCheckpointError,
)
from omegabridge.bridge import Bridge
from omegabridge import models, solvers, training
from omegabridge.training import Trainer, TrainingRecord, fit
from omegabridge.tabular import ColumnSpec, Schema, TabularBridge, infer_schema

# Older names of two public modules: ``ob.dispatch`` is ``ob.ops``; ``omegabridge.schedules`` is
# ``omegabridge.core.schedules``. Registered as modules, so ``import omegabridge.dispatch`` works too.
dispatch = ops
sys.modules[__name__ + ".dispatch"] = ops
sys.modules[__name__ + ".schedules"] = schedules

__all__ = [
    "Bridge",
    "Real",
    "Interval",
    "HalfLine",
    "Lattice",
    "Binary",
    "Categorical",
    "Sphere",
    "Product",
    "Domain",
    "SegmentTable",
    "schedules",
    "models",
    "ops",
    "dispatch",
    "reference",
    "training",
    "fit",
    "Trainer",
    "TrainingRecord",
    "TrainingCheckpointError",
    "OutputLockedError",
    "TableFileError",
    "TabularBridge",
    "Schema",
    "ColumnSpec",
    "infer_schema",
    "SchemaError",
    "CheckpointError",
    "NotFittedError",
    "DomainError",
    "ModelOutputError",
    "BackendUnavailableError",
    "__version__",
]
