"""Filling the missing cells of a table from a fitted ``TabularBridge``: ``impute``.

Each row with missing cells is sampled with its observed cells as conditions
(``omegabridge.tabular.conditions``): the observed cells follow the exact bridge to their
values, and a numeric column's "is missing" indicator is fixed to 0 in the cells to fill, so
they come back as values. A categorical column whose missing values are a category of their
own can still draw that category; those cells are drawn again (with the rest of the row's
filled cells, all with new noise) up to ``REDRAWS`` times: exact conditioning on "not missing"
by rejection of that one event, rare when missing values are rare.

With ``draws=1`` every filled cell is one draw from the model's conditional (what multiple
imputation and distribution-preserving uses want); with an odd ``draws`` > 1 it is the
per-cell median (numeric) or most frequent value (categorical) of that many draws: a point
estimate, closer to the truth on average, and still one of the drawn, valid values.

Example:
    >>> import pandas as pd, omegabridge as ob
    >>> frame = pd.DataFrame({"kind": ["a", "b"] * 20, "n": [0, 5] * 20})
    >>> model = ob.TabularBridge(steps=10, hidden=8, depth=1, verbose=False, progress=False).fit(frame, iterations=2, batch_size=8)
    >>> holes = frame.head(4).astype(object); holes.loc[[1, 2], "n"] = None
    >>> filled = impute(model, holes)
    >>> bool(filled["n"].notna().all()), filled["kind"].tolist() == holes["kind"].tolist()
    (True, True)
"""

from __future__ import annotations

import warnings

import numpy as np

from omegabridge.solvers import DEFAULT_SOLVER, TABLE_GRID
from omegabridge.tabular.conditions import condition_frame, known_cells

__all__ = ["REDRAWS", "impute"]

#: Times a categorical cell that came back missing is drawn again before it takes the column's most frequent value.
REDRAWS = 16


def impute(model, frame, seed: int = 0, *, draws: int = 1, batch_size: int = 8192, solver: str = DEFAULT_SOLVER,
           steps: int | None = None, grid: str = TABLE_GRID):
    """``frame`` with every missing cell filled from ``model`` (a fitted ``TabularBridge``) given the row's
    observed cells; observed cells come back unchanged, the index and column order are kept. ``solver``,
    ``steps``, ``grid`` as in ``TabularBridge.sample``. Deterministic for a given frame and seed."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"impute takes a pandas DataFrame, got {type(frame).__name__}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1 or draws % 2 == 0:
        raise ValueError(f"draws must be an odd positive integer (the median of an odd count is one of the draws), "
                         f"got {draws!r}")
    model.schema.check_columns(frame)
    sampler = model._sampler(solver, steps, grid)  # bad settings fail before any work
    frame = frame[model.schema.names]
    missing = frame.isna()
    rows_to_fill = missing.any(axis=1).to_numpy()
    rows = int(rows_to_fill.sum())
    if rows == 0:
        return frame.copy()
    holes = frame[rows_to_fill]
    given = condition_frame(model.schema, holes, rows, what="impute: observed cells")
    to_fill = missing[rows_to_fill].reset_index(drop=True)
    known = known_cells(model.encoder, given, present=to_fill)
    # Each draw (and each redraw) takes rows of the noise stream of its own: draw d rows [d n, (d + 1) n).
    filled = [model._sample_rows(sampler, rows, seed, batch_size, d * rows, known, given) for d in range(draws)]
    for d in range(draws):
        filled[d] = _redraw_missing_categories(model, filled[d], known, given, to_fill, seed,
                                               (draws + d * REDRAWS) * rows, batch_size, sampler)
    combined = filled[0] if draws == 1 else _combine(model.schema, filled)
    result = frame.copy()
    for spec in model.schema:
        cells = to_fill[spec.name].to_numpy()
        if not cells.any():
            continue
        column = result[spec.name].astype(object)
        column.iloc[np.flatnonzero(rows_to_fill)[cells]] = combined[spec.name].to_numpy(dtype=object)[cells]
        try:
            result[spec.name] = column.astype(combined[spec.name].dtype)
        except (TypeError, ValueError):
            result[spec.name] = column.infer_objects()
    return result


def _redraw_missing_categories(model, filled, known, given, to_fill, seed: int, row_offset: int, batch_size: int,
                               sampler: dict):
    """``filled`` with the cells to fill that came back as a categorical column's missing category drawn again."""
    columns = [spec.name for spec in model.schema if spec.kind == "categorical" and spec.missing]
    if not columns:
        return filled
    for attempt in range(REDRAWS):
        again = np.zeros(len(filled), dtype=bool)
        for name in columns:
            again |= (to_fill[name] & filled[name].isna()).to_numpy()
        if not again.any():
            return filled
        where = np.flatnonzero(again)
        drawn = model._sample_rows(sampler, len(where), seed, batch_size, row_offset + attempt * len(filled),
                                   known[where], given.iloc[where].reset_index(drop=True))
        filled = filled.copy()
        for name in filled.columns:
            column = filled[name].astype(object)
            column.iloc[where] = drawn[name].to_numpy(dtype=object)
            filled[name] = column.astype(filled[name].dtype) if not column.isna().any() else column
    for name in columns:
        left = (to_fill[name] & filled[name].isna()).to_numpy()
        if left.any():
            present = filled[name][filled[name].notna()]
            fallback = present.mode().iloc[0] if len(present) else model.schema[name].categories[0]
            warnings.warn(f"impute: {int(left.sum())} cell(s) of {name!r} came back missing in {REDRAWS + 1} draws; "
                          f"they take the most frequent filled value {fallback!r}", RuntimeWarning, stacklevel=3)
            column = filled[name].astype(object)
            column[left] = fallback
            filled[name] = column
    return filled


def _combine(schema, filled: list):
    """Per cell, the median (numeric columns) or most frequent value (categorical) of the draws."""
    import pandas as pd

    columns = {}
    for spec in schema:
        stacked = pd.concat([draw[spec.name].reset_index(drop=True) for draw in filled], axis=1)
        if spec.kind in ("categorical", "constant"):
            columns[spec.name] = stacked.astype(object).mode(axis=1, dropna=False)[0]
        else:
            values = stacked.to_numpy(dtype=np.float64, na_value=np.nan)
            ordered = np.sort(values, axis=1)  # NaN (missing) last; an odd count has a middle draw
            middle = ordered[:, len(filled) // 2]
            try:
                columns[spec.name] = pd.Series(middle).astype(filled[0][spec.name].dtype)
            except (TypeError, ValueError):  # a nullable or object column
                columns[spec.name] = pd.Series(middle)
    return pd.DataFrame(columns)
