"""Tables in, tables out: schema inference, invertible column encodings, ``TabularBridge``, checkpoints.

Example:
    >>> import pandas as pd, omegabridge as ob
    >>> frame = pd.DataFrame({"kind": ["a", "b"] * 20, "n": [0, 5] * 20})
    >>> model = ob.TabularBridge(steps=10, hidden=8, depth=1, verbose=False, progress=False)
    >>> bool(model.fit(frame, iterations=2, batch_size=8).sample(5)["n"].isin(range(6)).all())
    True
"""

from omegabridge.errors import CheckpointError, NotFittedError, SchemaError
from omegabridge.tabular.encoding import TableEncoder
from omegabridge.tabular.schema import ColumnSpec, Schema, infer_schema
from omegabridge.tabular.tabular_bridge import TabularBridge

__all__ = [
    "TabularBridge",
    "Schema",
    "ColumnSpec",
    "TableEncoder",
    "infer_schema",
    "SchemaError",
    "CheckpointError",
    "NotFittedError",
]
