"""Cells of a table fixed before sampling: the conditions of ``TabularBridge.sample`` and the observed cells of ``impute``.

A condition is a column's value, the same for every row (``{"religious": 4}``) or per row
(a DataFrame whose non-missing cells are fixed). ``condition_frame`` checks conditions
against the schema (a ``SchemaError`` names the column, row and value), ``known_cells``
encodes them into the ``known`` rows of ``Bridge.sample`` (NaN where a cell is free: the
encoded columns of a conditioned column are all known), and ``with_given`` puts the
given values back into the decoded frame exactly (a real value's float32 encoding is
not the value itself).

Example:
    >>> import pandas as pd
    >>> from omegabridge.tabular.schema import infer_schema
    >>> from omegabridge.tabular.encoding import TableEncoder
    >>> frame = pd.DataFrame({"kind": ["a", "b", "c"] * 4, "n": [0, 1, 2, 3] * 3})
    >>> encoder = TableEncoder.fit(infer_schema(frame), frame)
    >>> given = condition_frame(encoder.schema, {"kind": "b"}, 2)
    >>> known_cells(encoder, given).tolist()
    [[0.0, 1.0, 0.0, nan], [0.0, 1.0, 0.0, nan]]
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from omegabridge.errors import SchemaError
from omegabridge.tabular.encoding import TableEncoder
from omegabridge.tabular import times
from omegabridge.tabular.schema import TIME_KINDS, ColumnSpec, Schema, plain_value

__all__ = ["condition_frame", "known_cells", "with_given", "parse_condition"]


def condition_frame(schema: Schema, conditions, num_rows: int, what: str = "conditions"):
    """``conditions`` (a dict ``{column: value}`` or a DataFrame of ``num_rows`` rows) as a DataFrame of
    ``num_rows`` rows with the conditioned columns only, missing where a cell is free; checked against ``schema``."""
    import pandas as pd

    if isinstance(conditions, pd.DataFrame):
        if len(conditions) != num_rows:
            raise ValueError(f"{what}: a DataFrame of conditions must have one row per sampled row ({num_rows}), "
                             f"got {len(conditions)}")
        _check_names(schema, list(conditions.columns), what)
        given = conditions.reset_index(drop=True).astype(object)
        given = given.where(given.notna(), None)
        for name in given.columns:
            _check_cells(schema[name], given[name], conditions.index, what)
        return _as_times(schema, given)
    if not isinstance(conditions, Mapping):
        raise TypeError(f"{what} must be a dict {{column: value}} or a pandas DataFrame, got {type(conditions).__name__}")
    _check_names(schema, list(conditions), what)
    for name, value in conditions.items():
        if value is None or (isinstance(value, float) and value != value) or value is pd.NA or value is pd.NaT:
            raise SchemaError(f"{what}: column {name!r} is conditioned on a missing value; a condition must be a value "
                              "(leave the column out to leave it free)")
        if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
            raise SchemaError(f"{what}: column {name!r} is conditioned on a {type(value).__name__}; a dict condition is one "
                              "value for every row (give a DataFrame for values per row)")
        spec = schema[name]
        if not bool(spec.valid_mask([value])[0]):
            raise SchemaError(f"{what}: column {name!r}: value {value!r} is outside the column's domain ({spec.describe()})")
    given = pd.DataFrame({name: pd.Series([value] * num_rows, dtype=object) for name, value in conditions.items()},
                         index=range(num_rows))
    return _as_times(schema, given)


def _as_times(schema: Schema, given):
    """``given`` with the cells of time columns as Timestamps / Timedeltas of the column's dtype (a condition
    may be a string, or a time of another resolution or zone); checked cells, so none is lost."""
    parsed = schema.parse_times(given)
    for name in given.columns:
        if schema[name].kind in TIME_KINDS:
            given[name] = parsed[name].astype(object).where(parsed[name].notna(), None)
    return given


def known_cells(encoder: TableEncoder, given, present=None) -> torch.Tensor:
    """The ``known`` rows of ``Bridge.sample`` for ``given`` (from ``condition_frame``): the encoded values of
    every conditioned cell's columns, NaN elsewhere.

    ``present`` (optional, a boolean DataFrame of free cells that must come back as values, not missing:
    imputation) fixes the "is missing" indicator of those cells of numeric columns to 0 and leaves their
    values free.
    """
    import pandas as pd

    rows = len(given)
    full = pd.DataFrame({spec.name: pd.Series([_placeholder(spec)] * rows, dtype=object) for spec in encoder.schema})
    for name in given.columns:
        cells = given[name].notna().to_numpy()
        full.loc[cells, name] = given.loc[cells, name]
    encoded = encoder.encode(full, what="conditions")
    mask = torch.zeros(rows, encoder.width, dtype=torch.bool)
    for spec, encoding in zip(encoder.schema, encoder.encodings):
        columns = slice(encoding.offset, encoding.offset + encoding.width)
        if spec.name in given.columns:
            mask[:, columns] = torch.tensor(given[spec.name].notna().to_numpy(dtype=bool)).unsqueeze(1)
        if present is not None and spec.name in present.columns and encoding.missing_indicator:
            to_fill = torch.tensor(present[spec.name].to_numpy(dtype=bool))
            mask[to_fill, encoding.offset] = True
            encoded[to_fill, encoding.offset] = 0.0  # "is missing" = 0: the value itself stays free
    return torch.where(mask, encoded, torch.full_like(encoded, float("nan")))


def with_given(frame, given):
    """``frame`` (decoded samples) with every non-missing cell of ``given`` put back exactly, in the column's dtype."""
    import pandas as pd

    frame = frame.copy()
    for name in given.columns:
        cells = given[name].notna().to_numpy()
        if not cells.any():
            continue
        column = frame[name]
        values = pd.Series(np.where(cells, given[name].to_numpy(dtype=object), column.to_numpy(dtype=object)),
                           index=column.index, dtype=object)
        try:
            frame[name] = values.astype(column.dtype)
        except (TypeError, ValueError):  # e.g. an integer condition 3.0 in an int column: the dtype takes int(3.0)
            frame[name] = values.infer_objects()
    return frame


def parse_condition(schema: Schema, text: str) -> tuple[str, object]:
    """``"COLUMN=VALUE"`` (the CLI's ``--condition``) as (column, value) in the column's type: a category as the
    schema holds it (matched by its text), a number for a numeric column. ``SchemaError`` names a bad one.

    >>> from omegabridge.tabular.schema import ColumnSpec
    >>> schema = Schema([ColumnSpec("size", "categorical", categories=[1, 2]), ColumnSpec("n", "lattice", low=0, high=9)])
    >>> parse_condition(schema, "size=2"), parse_condition(schema, "n=3")
    (('size', 2), ('n', 3))
    """
    splits = [index for index, letter in enumerate(text) if letter == "=" and text[:index] in schema.names]
    if not splits:
        raise SchemaError(f"--condition {text!r}: expected COLUMN=VALUE with COLUMN one of the model's columns "
                          f"{schema.names}")
    name, value = text[:splits[0]], text[splits[0] + 1:]
    spec = schema[name]
    if spec.kind in TIME_KINDS:
        return name, value  # parsed where it is checked (a datetime or timedelta string)
    if spec.kind in ("categorical", "constant"):
        allowed = spec.categories if spec.kind == "categorical" else [spec.value]
        matches = [category for category in allowed if str(category) == value]
        if not matches:
            shown = ", ".join(repr(str(category)) for category in allowed[:12]) + (", ..." if len(allowed) > 12 else "")
            raise SchemaError(f"--condition {text!r}: column {name!r} has no category {value!r}; its categories are {shown}")
        return name, matches[0]
    try:
        number = float(value)
    except ValueError:
        raise SchemaError(f"--condition {text!r}: column {name!r} is numeric ({spec.describe()}); {value!r} is not a "
                          "number") from None
    return name, int(number) if number.is_integer() else number


def _check_names(schema: Schema, names: list, what: str) -> None:
    unknown = [name for name in names if name not in schema.names]
    if unknown:
        raise SchemaError(f"{what}: unknown column(s) {unknown}; the model's columns are {schema.names}")


def _check_cells(spec: ColumnSpec, values, index, what: str) -> None:
    """Every non-missing cell of ``values`` allowed by ``spec`` (missing cells are free)."""
    present = values.notna().to_numpy()
    good = spec.valid_mask(values) | ~present
    if not good.all():
        position = int(np.flatnonzero(~good)[0])
        raise SchemaError(f"{what}: column {spec.name!r}, row {plain_value(index[position])!r}: value "
                          f"{plain_value(values.iloc[position])!r} is "
                          f"outside the column's domain ({spec.describe()}); {int((~good).sum())} row(s) of it are outside")


def _placeholder(spec: ColumnSpec):
    """Some allowed, non-missing value of a column: what a free cell is encoded as before it is masked out."""
    if spec.kind == "categorical":
        return spec.categories[0]
    if spec.kind == "constant":
        return spec.value
    if spec.kind == "ordinal":
        return spec.levels[0]
    if spec.kind in TIME_KINDS:
        return times.from_ticks(np.array([spec.low]), np.array([False]), spec.dtype).iloc[0]
    return spec.low if spec.low is not None else 0.0
