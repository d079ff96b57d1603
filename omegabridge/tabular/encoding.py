"""Invertible maps between a table's columns and rows of an omegabridge domain.

``TableEncoder.fit(schema, frame)`` picks, per column, the factors of the domain and a
well-conditioned scale (so one noise schedule suits every column), ``encode`` turns a
DataFrame into float32 rows, and ``decode`` turns rows of the domain back into a
DataFrame in the original units and dtypes. Per kind (``EXTENT`` = 4):

===========  ===============================================================================
kind         factors (in order) and encoded value u
===========  ===============================================================================
categorical  ``Categorical(K)`` one-hot; a missing value is one more category
constant     nothing (a Binary "is missing" when the column has missing values)
lattice      ``Lattice(0, (K-1) d, step=d)`` over the index of the K points, d = min(1, EXTENT/(K-1))
ordinal      the same over the index of the sorted levels
halfline     ``Binary`` "at the lower end" when at least 1% of the values sit there, then
             ``HalfLine(low=0)`` on u = log1p((v - low) / c), c the median of v - low over v > low
interval     ``Interval(0, EXTENT)`` on u = EXTENT (v - low) / (high - low)
real         ``Real()`` on u = (v - mean) / sd
datetime,    over the index k of the K allowed ticks (omegabridge.tabular.times): the
timedelta    lattice's encoding when K <= 4096, else ``Interval(0, EXTENT)`` on
             u = EXTENT k / (K - 1), decoded to the nearest tick (float32 u holds 2^24
             distinct values, so wider ranges come back on a coarser grid of allowed ticks)
===========  ===============================================================================

Every numeric kind with missing values gets a ``Binary`` "is missing" factor first; the
value of a missing cell is encoded as a (seeded) draw from the column's observed values,
and decoded as missing when the indicator is 1. A draw rather than one fill value: a
point mass at the median inside a continuous factor is hard for the drift to learn and
biased the sampled missing rate (0.37 instead of 0.30 in a test), a draw adds no new
structure for the model to fit. Since each factor's samples lie in the
factor exactly and every map above is a bijection onto the column's allowed values,
decoded samples obey the schema exactly.

Example:
    >>> import pandas as pd
    >>> from omegabridge.tabular.schema import infer_schema
    >>> frame = pd.DataFrame({"kind": ["a", "b", "a"], "n": [1, 2, 3]})
    >>> encoder = TableEncoder.fit(infer_schema(frame), frame)
    >>> encoder.domain
    Product([Categorical(2), Lattice(0.0, 2.0, step=1.0)])
    >>> encoder.decode(encoder.encode(frame)).equals(frame)
    True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from omegabridge.core import domains
from omegabridge.tabular import times
from omegabridge.tabular.schema import TIME_KINDS, ColumnSpec, Schema
from omegabridge.errors import SchemaError

__all__ = ["EXTENT", "ATOM_SHARE", "ColumnEncoding", "TableEncoder"]

#: Encoded extent of bounded and lattice columns (the default schedule's spread, sd 3.9, covers it).
EXTENT = 4.0
#: Missing cells of a numeric column are drawn from at most this many of its observed values.
FILL_POOL = 512
#: A half-line column gets an "at the lower end" indicator when at least this share of values sits there.
ATOM_SHARE = 0.01
#: A time column with at most this many allowed ticks is a lattice; wider ones are an interval.
MAX_TIME_LATTICE = 4096


@dataclass
class ColumnEncoding:
    """How one column is encoded: its flat columns ``[offset, offset + width)`` and fitted constants."""

    name: str
    offset: int = 0
    width: int = 0
    missing_indicator: bool = False  # a Binary "is missing" factor first
    atom_indicator: bool = False  # half-line: a Binary "value == low" factor
    step: float = 1.0  # lattice/ordinal: encoded spacing
    center: float = 0.0  # real: mean
    scale: float = 1.0  # real: sd; half-line: c
    fill_values: list | None = None  # observed values (original units) that missing cells are drawn from


class TableEncoder:
    """The fitted per-column encodings of a ``Schema`` and the ``ob.Product`` domain they form."""

    def __init__(self, schema: Schema, encodings: list[ColumnEncoding]):
        self.schema = schema
        self.encodings = encodings
        factors: list[domains.Domain] = []
        offset = 0
        for spec, encoding in zip(schema, encodings):
            column_factors = _factors(spec, encoding)
            encoding.offset = offset
            encoding.width = sum(f.width for f in column_factors)
            offset += encoding.width
            factors += column_factors
        if not factors:
            raise SchemaError("every column is constant without missing values: there is nothing to model")
        self.domain = domains.Product(factors)
        self.width = offset

    # ------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, schema: Schema, frame) -> "TableEncoder":
        """Fit scales and fill values on ``frame`` (checked against ``schema`` first)."""
        schema.check_values(frame, what="training data")
        encodings = []
        for spec in schema:
            encoding = ColumnEncoding(spec.name)
            series = frame[spec.name]
            missing = series.isna().to_numpy()
            encoding.missing_indicator = spec.missing and spec.kind != "categorical"
            if spec.kind in ("lattice", "ordinal") or _is_time_lattice(spec):
                points = spec.points
                encoding.step = min(1.0, EXTENT / (points - 1))
            if spec.kind not in ("categorical", "constant"):
                values = _numbers(spec, series)[~missing]
                if encoding.missing_indicator:
                    pool = values if len(values) else np.asarray([_any_allowed(spec)])
                    chosen = np.random.default_rng(0).choice(pool, size=min(len(pool), FILL_POOL), replace=False)
                    encoding.fill_values = np.sort(chosen).tolist()
                if spec.kind == "real":
                    encoding.center = float(values.mean()) if len(values) else 0.0
                    spread = float(values.std()) if len(values) > 1 else 0.0
                    encoding.scale = spread if spread > 0 else 1.0
                elif spec.kind == "halfline":
                    excess = values - spec.low
                    positive = excess[excess > 0]
                    encoding.scale = float(np.median(positive)) if len(positive) else 1.0
                    encoding.atom_indicator = bool(len(values)) and float((excess == 0).mean()) >= ATOM_SHARE
            encodings.append(encoding)
        return cls(schema, encodings)

    # ------------------------------------------------------------------------------------
    def encode(self, frame, what: str = "data") -> torch.Tensor:
        """Rows of ``self.domain`` (float32) for ``frame``; ``SchemaError`` names the first bad column and row."""
        self.schema.check_values(frame, what=what)
        rows = len(frame)
        out = np.zeros((rows, self.width), dtype=np.float64)
        for spec, encoding in zip(self.schema, self.encodings):
            series = frame[spec.name]
            missing = series.isna().to_numpy()
            column = encoding.offset
            if spec.kind == "categorical":
                index = np.full(rows, len(spec.categories), dtype=np.int64)  # the "missing" category
                present = ~missing
                codes = _category_codes(series[present], spec.categories)
                index[present] = codes
                out[np.arange(rows), column + index] = 1.0
                continue
            if encoding.missing_indicator:
                out[:, column] = missing
                column += 1
            if spec.kind == "constant":
                continue
            values = _numbers(spec, series)
            if missing.any():  # the same draws for the same table: seeded by the number of rows
                draws = np.random.default_rng(rows).choice(np.asarray(encoding.fill_values), size=int(missing.sum()))
                values = values.copy()
                values[missing] = draws
            if spec.kind == "lattice":
                out[:, column] = np.rint((values - spec.low) / spec.step) * encoding.step
            elif _is_time_lattice(spec):  # values are already the tick index k
                out[:, column] = values * encoding.step
            elif spec.kind in TIME_KINDS:
                out[:, column] = EXTENT * values / (spec.points - 1)
            elif spec.kind == "ordinal":
                out[:, column] = np.searchsorted(np.asarray(spec.levels), values) * encoding.step
            elif spec.kind == "halfline":
                excess = values - spec.low
                if encoding.atom_indicator:
                    out[:, column] = excess == 0
                    column += 1
                out[:, column] = np.log1p(excess / encoding.scale)
            elif spec.kind == "interval":
                out[:, column] = np.clip(EXTENT * (values - spec.low) / (spec.high - spec.low), 0.0, EXTENT)
            else:
                out[:, column] = (values - encoding.center) / encoding.scale
        x = torch.from_numpy(out).to(torch.float32)
        # float32 rounding of a value at a bound must not leave the domain (e.g. EXTENT (v - low)/(high - low)).
        return self.domain.project(x) if rows else x

    def decode(self, x: torch.Tensor):
        """A DataFrame in the original units and dtypes from rows of ``self.domain``.

        Raises ``SchemaError`` if a row is not in the domain (samples of the bridge always are).
        """
        import pandas as pd

        if x.ndim != 2 or x.shape[1] != self.width:
            raise SchemaError(f"expected rows of width {self.width}, got shape {tuple(x.shape)}")
        inside = self.domain.contains(x)
        if not bool(inside.all()):
            row = int(torch.nonzero(~inside)[0, 0])
            raise SchemaError(f"row {row} is not in the domain {self.domain!r}; decode takes samples of the bridge")
        x = x.detach().to(torch.float64).cpu().numpy()
        rows = x.shape[0]
        columns = {}
        for spec, encoding in zip(self.schema, self.encodings):
            column = encoding.offset
            if spec.kind == "categorical":
                index = np.argmax(x[:, column:column + encoding.width], axis=1)
                columns[spec.name] = _categories_out(spec, index)
                continue
            missing = np.zeros(rows, dtype=bool)
            if encoding.missing_indicator:
                missing = x[:, column] == 1.0
                column += 1
            if spec.kind == "constant":
                values = np.full(rows, spec.value, dtype=object)
                columns[spec.name] = _with_dtype(pd.Series(values).where(~missing, None), spec)
                continue
            u = x[:, column]
            if spec.kind in TIME_KINDS:
                index = np.rint(u / encoding.step) if _is_time_lattice(spec) else np.rint(u * (spec.points - 1) / EXTENT)
                index = np.clip(index, 0, spec.points - 1).astype(np.int64)
                columns[spec.name] = _with_dtype(times.from_ticks(spec.low + spec.step * index, missing, spec.dtype), spec)
                continue
            if spec.kind in ("lattice", "ordinal"):
                index = np.rint(u / encoding.step).astype(np.int64)
                values = spec.low + spec.step * index if spec.kind == "lattice" else np.asarray(spec.levels)[index]
            elif spec.kind == "halfline":
                at_low = np.zeros(rows, dtype=bool)
                if encoding.atom_indicator:
                    at_low = u == 1.0
                    u = x[:, column + 1]
                values = np.where(at_low, spec.low, spec.low + encoding.scale * np.expm1(u))
                values = np.maximum(values, spec.low)
            elif spec.kind == "interval":
                values = np.clip(spec.low + (spec.high - spec.low) * (u / EXTENT), spec.low, spec.high)
            else:
                values = encoding.center + encoding.scale * u
            columns[spec.name] = _numbers_out(spec, values, missing)
        return pd.DataFrame(columns, columns=self.schema.names)

    # ------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The fitted constants (JSON-able); ``from_dict(schema, ...)`` rebuilds the encoder."""
        return {"encodings": [asdict(e) for e in self.encodings]}

    @classmethod
    def from_dict(cls, schema: Schema, state: dict) -> "TableEncoder":
        entries = state["encodings"]
        if [e["name"] for e in entries] != schema.names:
            raise SchemaError("the encoder's columns do not match the schema's")
        return cls(schema, [ColumnEncoding(**e) for e in entries])


def _is_time_lattice(spec: ColumnSpec) -> bool:
    return spec.kind in TIME_KINDS and spec.points <= MAX_TIME_LATTICE


def _numbers(spec: ColumnSpec, series) -> np.ndarray:
    """A column's values as float64 (NaN where missing); a time column's as the index k of its tick."""
    if spec.kind in TIME_KINDS:
        ticks, missing = times.ticks(series, spec.dtype)
        index = ((ticks - spec.low) // spec.step).astype(np.float64)  # exact below 2^53 ticks
        index[missing] = np.nan
        return index
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _any_allowed(spec: ColumnSpec) -> float:
    """Some allowed value of a numeric column (for a column whose every training value is missing;
    a time column's tick index 0)."""
    if spec.kind in TIME_KINDS:
        return 0.0
    if spec.kind == "ordinal":
        return spec.levels[0]
    return spec.low if spec.low is not None else 0.0


def _factors(spec: ColumnSpec, encoding: ColumnEncoding) -> list[domains.Domain]:
    result: list[domains.Domain] = []
    if spec.kind == "categorical":
        count = len(spec.categories) + (1 if spec.missing else 0)
        return [domains.Categorical(count)] if count >= 2 else []
    if encoding.missing_indicator:
        result.append(domains.Binary())
    if spec.kind in ("lattice", "ordinal") or _is_time_lattice(spec):
        result.append(domains.Lattice(0.0, (spec.points - 1) * encoding.step, step=encoding.step))
    elif spec.kind in TIME_KINDS:
        result.append(domains.Interval(0.0, EXTENT))
    elif spec.kind == "halfline":
        if encoding.atom_indicator:
            result.append(domains.Binary())
        result.append(domains.HalfLine(low=0.0))
    elif spec.kind == "interval":
        result.append(domains.Interval(0.0, EXTENT))
    elif spec.kind == "real":
        result.append(domains.Real())
    return result


def _category_codes(values, categories: list) -> np.ndarray:
    import pandas as pd

    codes = pd.Categorical(values.astype(object), categories=categories).codes
    return np.asarray(codes, dtype=np.int64)


def _categories_out(spec: ColumnSpec, index: np.ndarray):
    import pandas as pd

    table = np.asarray(list(spec.categories) + [None], dtype=object)
    values = table[index]
    if spec.dtype == "category":
        return pd.Series(pd.Categorical(values, categories=spec.categories))
    return _with_dtype(pd.Series(values, dtype=object), spec)


def _numbers_out(spec: ColumnSpec, values: np.ndarray, missing: np.ndarray):
    import pandas as pd

    integer = _is_integer_dtype(spec.dtype)
    if integer:
        values = np.rint(values)
        if spec.low is not None:  # rounding must not cross a declared bound
            values = np.maximum(values, math.ceil(spec.low))
        if spec.kind == "interval":
            values = np.minimum(values, math.floor(spec.high))
    series = pd.Series(values)
    if missing.any():
        series = series.astype(object).where(~missing, None)
    return _with_dtype(series, spec)


def _is_integer_dtype(dtype: str) -> bool:
    return dtype.lower().startswith(("int", "uint"))


def _with_dtype(series, spec: ColumnSpec):
    """``series`` in the spec's dtype; a dtype that cannot hold missing values falls back to a nullable one."""
    import pandas as pd

    try:
        return series.astype(spec.dtype)
    except (TypeError, ValueError):
        if _is_integer_dtype(spec.dtype):
            return series.astype("Int64")
        if spec.dtype == "bool":
            return series.astype("boolean")
        if series.isna().any():
            return series.astype(object).where(series.notna(), np.nan)
        return pd.Series(series, dtype=object)
