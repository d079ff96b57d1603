"""omegabridge: diffusion bridges on constrained domains, with fused kernels.

Every sample lands in the domain exactly: a closed-form singular drift from
Doob's h-transform (Liu, Wu, Ye, Liu, ICLR 2023) plus a learned neural drift.

Example:
    >>> import omegabridge as ob
    >>> domain = ob.Product([ob.Interval(-1.0, 1.0), ob.HalfLine(low=0.0), ob.Categorical(4)])
    >>> bridge = ob.Bridge(domain, ob.schedules.Exp(a=3.0, b=1.0), steps=50)
    >>> x = bridge.sample(None, n=8, seed=0, progress=False)
    >>> bool(domain.contains(x).all())
    True
"""

from omegabridge import models, schedules
from omegabridge.bridge import Bridge
from omegabridge.domains import (
    Binary,
    Categorical,
    Domain,
    HalfLine,
    Interval,
    Lattice,
    Product,
    Real,
    SegmentTable,
    Sphere,
)
from omegabridge.errors import BackendUnavailableError, DomainError, ModelOutputError
from omegabridge.trainer import Trainer, TrainingCheckpointError, TrainingRecord
from omegabridge.training import fit
from omegabridge.tabular import (
    CheckpointError,
    ColumnSpec,
    NotFittedError,
    Schema,
    SchemaError,
    TabularBridge,
    infer_schema,
)

__version__ = "0.1.0"

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
    "fit",
    "Trainer",
    "TrainingRecord",
    "TrainingCheckpointError",
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
