"""What each column of a table is: the schema ``TabularBridge`` infers, prints and lets users override.

A ``ColumnSpec`` names a column's kind and its allowed values; a ``Schema`` is the
ordered list of them. ``infer_schema`` reads a DataFrame:

====================================================  ==============================
column                                                kind
====================================================  ==============================
datetime64 (zoned or not) / timedelta64 dtype         ``datetime`` / ``timedelta`` (low..high, the step the
                                                      coarsest unit every value is a multiple of)
text that is all ISO 8601 dates or date-times         ``datetime`` / ``timedelta`` at microseconds (how a
without a zone ("2020-01-31", "2020-01-31 08:00"),    CSV file holds times; a zoned text time stays
or all timedeltas as pandas writes them ("1 days")    ``categorical``: declare its dtype)
bool, category, object or string dtype                ``categorical`` (the values seen: a category
                                                      dtype's unused levels are dropped)
one distinct value                                    ``constant``
integer values (any numeric dtype) spanning at most   ``lattice`` (low..high, step 1)
``max_lattice_points`` points
at most ``max_ordinal_levels`` distinct non-integer   ``ordinal`` (the sorted levels)
values
other numbers with min >= 0                           ``halfline`` (low = 0)
other numbers                                         ``real``
====================================================  ==============================

``interval`` (declared bounds) is never inferred: declare it in the overrides. Any
choice can be overridden with a dict ``{column: "kind"}`` or ``{column: {"kind": ...,
...parameters}}``, which is also the JSON of ``omegabridge fit --schema FILE``.
Missing values (NaN, None, pd.NA) are modelled, not dropped: a column with any gets
``missing=True`` (an extra category, or a Binary "is missing" indicator).

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"colour": ["red", "blue", "red"], "count": [0, 3, 2], "share": [0.1, 0.5, 0.9]})
    >>> schema = infer_schema(frame, {"share": {"kind": "interval", "low": 0, "high": 1}})
    >>> [(c.name, c.kind) for c in schema]
    [('colour', 'categorical'), ('count', 'lattice'), ('share', 'interval')]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Iterator, Mapping

import numpy as np
from omegabridge.errors import SchemaError

__all__ = ["KINDS", "ColumnSpec", "Schema", "infer_schema", "plain_value"]

KINDS = ("categorical", "constant", "lattice", "ordinal", "halfline", "interval", "real", "datetime", "timedelta")
#: Kinds of time columns: values are int64 ticks at the dtype's resolution (omegabridge.tabular.times).
TIME_KINDS = ("datetime", "timedelta")
#: Kinds with a finite set of values: fidelity is total variation (the others: Kolmogorov-Smirnov).
DISCRETE_KINDS = ("categorical", "constant", "lattice", "ordinal")
#: Integer columns with at most this many points (high - low + 1) become lattices.
MAX_LATTICE_POINTS = 64
#: Non-integer numeric columns with at most this many distinct values become ordinals.
MAX_ORDINAL_LEVELS = 12


@dataclass
class ColumnSpec:
    """One column: its ``kind``, allowed values, whether it has missing values, and its dtype.

    Parameters by kind: ``categorical`` uses ``categories`` (a list of the allowed values);
    ``constant`` uses ``value``; ``lattice`` uses ``low``, ``high`` and ``step``; ``ordinal``
    uses ``levels`` (sorted numbers); ``halfline`` uses ``low``; ``interval`` uses ``low``
    and ``high``; ``real`` none; ``datetime`` and ``timedelta`` use ``low``, ``high`` and
    ``step`` in integer ticks of the dtype's resolution (a datetime in its local wall time;
    ``low`` and ``high`` may be given as strings, "2020-01-31" or "3 days"). ``dtype`` is the
    pandas dtype the column comes back in.

    >>> ColumnSpec("age", "lattice", low=18, high=90).describe()
    'lattice 18..90 step 1'
    """

    name: str
    kind: str
    categories: list | None = None
    levels: list[float] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    value: Any = None
    missing: bool = False
    dtype: str = "float64"
    source: str = field(default="inferred", compare=False)

    def __post_init__(self) -> None:
        where = f"column {self.name!r}"
        if self.kind not in KINDS:
            raise SchemaError(f"{where}: unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind == "categorical":
            if not self.categories:
                raise SchemaError(f"{where}: a categorical column needs a non-empty 'categories' list")
            if len(set(self.categories)) != len(self.categories):
                raise SchemaError(f"{where}: 'categories' has repeated values")
        elif self.kind == "ordinal":
            if not self.levels or len(self.levels) < 2:
                raise SchemaError(f"{where}: an ordinal column needs at least two 'levels'")
            self.levels = [float(v) for v in self.levels]
            if any(not math.isfinite(v) for v in self.levels) or any(
                b <= a for a, b in zip(self.levels, self.levels[1:])
            ):
                raise SchemaError(f"{where}: 'levels' must be finite and strictly increasing, got {self.levels}")
        elif self.kind == "lattice":
            self.step = 1.0 if self.step is None else self.step
            self.low, self.high, self.step = (
                _number(where, "low", self.low), _number(where, "high", self.high), _number(where, "step", self.step)
            )
            if self.step <= 0 or not self.low < self.high:
                raise SchemaError(f"{where}: a lattice needs step > 0 and low < high, got {self.low}..{self.high} step {self.step}")
            points = (self.high - self.low) / self.step
            if abs(points - round(points)) > 1e-9 * max(1.0, points):
                raise SchemaError(f"{where}: step {self.step} does not divide high - low = {self.high - self.low}")
            if round(points) + 1 > 4096:
                raise SchemaError(f"{where}: a lattice has at most 4096 points, got {round(points) + 1}; use 'halfline' or 'real'")
        elif self.kind in TIME_KINDS:
            self._check_time(where)
        elif self.kind == "halfline":
            self.low = 0.0 if self.low is None else _number(where, "low", self.low)
        elif self.kind == "interval":
            self.low, self.high = _number(where, "low", self.low), _number(where, "high", self.high)
            if not self.low < self.high:
                raise SchemaError(f"{where}: an interval needs low < high, got {self.low}, {self.high}")

    def _check_time(self, where: str) -> None:
        from omegabridge.tabular import times

        try:
            unit, _, is_timedelta = times.resolution(self.dtype)
        except (TypeError, ValueError):
            raise SchemaError(f"{where}: a {self.kind} column needs a {self.kind}64 dtype, got {self.dtype!r}") from None
        if is_timedelta != (self.kind == "timedelta"):
            raise SchemaError(f"{where}: a {self.kind} column needs a {self.kind}64 dtype, got {self.dtype!r}")
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    value = times.ticks_of(value, self.dtype)
                except ValueError:
                    raise SchemaError(f"{where}: {name} {value!r} is not a {self.kind} of dtype {self.dtype}") from None
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise SchemaError(f"{where}: {name} must be an integer count of {unit} ticks or a {self.kind} string, "
                                  f"got {value!r}")
            setattr(self, name, int(value))
        self.step = 1 if self.step is None else self.step
        if isinstance(self.step, float) and self.step.is_integer():
            self.step = int(self.step)
        if isinstance(self.step, bool) or not isinstance(self.step, (int, np.integer)) or self.step < 1:
            raise SchemaError(f"{where}: step must be a positive integer count of {unit} ticks, got {self.step!r}")
        self.step = int(self.step)
        if not self.low < self.high or (self.high - self.low) % self.step:
            raise SchemaError(f"{where}: a {self.kind} column needs low < high with step dividing high - low, got "
                              f"{self.low}..{self.high} step {self.step} ({unit} ticks)")

    @property
    def points(self) -> int:
        """Number of allowed values of a lattice, ordinal, categorical or time column."""
        if self.kind in TIME_KINDS:
            return (self.high - self.low) // self.step + 1
        if self.kind == "lattice":
            return int(round((self.high - self.low) / self.step)) + 1
        if self.kind == "ordinal":
            return len(self.levels)
        if self.kind == "categorical":
            return len(self.categories)
        raise AttributeError(f"a {self.kind} column has no finite set of points")

    def describe(self) -> str:
        """A short human-readable statement of the allowed values."""
        if self.kind == "categorical":
            shown = ", ".join(repr(c) for c in self.categories[:6]) + (", ..." if len(self.categories) > 6 else "")
            text = f"categorical, {len(self.categories)} categories ({shown})"
        elif self.kind == "constant":
            text = f"constant {self.value!r}"
        elif self.kind == "lattice":
            text = f"lattice {_short(self.low)}..{_short(self.high)} step {_short(self.step)}"
        elif self.kind == "ordinal":
            text = f"ordinal, {len(self.levels)} levels ({', '.join(_short(v) for v in self.levels)})"
        elif self.kind in TIME_KINDS:
            from omegabridge.tabular import times

            zone = times.resolution(self.dtype)[1]
            text = (f"{self.kind} {times.describe_ticks(self.low, self.dtype)} .. {times.describe_ticks(self.high, self.dtype)} "
                    f"step {times.unit_name(self.step, self.dtype)}" + (f" ({zone} wall time)" if zone else ""))
        elif self.kind == "halfline":
            text = f"halfline >= {_short(self.low)}"
        elif self.kind == "interval":
            text = f"interval [{_short(self.low)}, {_short(self.high)}]"
        else:
            text = "real"
        return text + (" + missing" if self.missing else "")

    def valid_mask(self, values) -> np.ndarray:
        """Per value: True when it is allowed (a missing value is allowed only if ``missing``).

        >>> ColumnSpec("n", "lattice", low=0, high=3).valid_mask([0, 1.5, 3, 4]).tolist()
        [True, False, True, False]
        """
        import pandas as pd

        series = pd.Series(values)
        missing = series.isna().to_numpy()
        if self.kind in ("categorical", "constant"):
            allowed = self.categories if self.kind == "categorical" else [self.value]
            inside = series.isin(allowed).to_numpy()
            return np.where(missing, self.missing, inside)
        if self.kind in TIME_KINDS:
            from omegabridge.tabular import times

            ticks, _, not_a_time = times.valid_ticks(series, self.dtype)
            inside = ~not_a_time & (ticks >= self.low) & (ticks <= self.high) & ((ticks - self.low) % self.step == 0)
            return np.where(missing, self.missing, inside)
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            if self.kind == "lattice":
                index = (numbers - self.low) / self.step
                inside = (numbers >= self.low) & (numbers <= self.high) & (np.abs(index - np.rint(index)) <= 1e-9 * np.maximum(1.0, np.abs(index)))
            elif self.kind == "ordinal":
                inside = np.isin(numbers, np.asarray(self.levels))
            elif self.kind == "halfline":
                inside = np.isfinite(numbers) & (numbers >= self.low)
            elif self.kind == "interval":
                inside = np.isfinite(numbers) & (numbers >= self.low) & (numbers <= self.high)
            else:
                inside = np.isfinite(numbers)
        # A value that is not a number at all (a string in a numeric column) is invalid, not missing.
        return np.where(missing, self.missing, inside)

    def to_dict(self) -> dict:
        """The JSON form (only the parameters its kind uses)."""
        keep = {"name", "kind", "missing", "dtype"} | set(_PARAMETERS[self.kind])
        result = {}
        for item in fields(self):
            if item.name in keep:
                value = getattr(self, item.name)
                if item.name == "categories":
                    value = [plain_value(v) for v in value]
                elif item.name == "value":
                    value = plain_value(value)
                result[item.name] = value
        return result

    @classmethod
    def from_dict(cls, name: str, entry: Mapping | str, source: str = "declared") -> "ColumnSpec":
        """A spec from ``"kind"`` or ``{"kind": ..., parameters}``; unknown keys are an error naming them."""
        if isinstance(entry, str):
            entry = {"kind": entry}
        if not isinstance(entry, Mapping) or "kind" not in entry:
            raise SchemaError(f"column {name!r}: a schema entry must be a kind name or a dict with 'kind', got {entry!r}")
        known = {item.name for item in fields(cls)} - {"source"}
        unknown = set(entry) - known
        if unknown:
            raise SchemaError(f"column {name!r}: unknown schema keys {sorted(unknown)}; known: {sorted(known - {'name'})}")
        values = dict(entry)
        values.pop("name", None)
        return cls(name=name, source=source, **values)


_PARAMETERS = {
    "categorical": ("categories",),
    "constant": ("value",),
    "lattice": ("low", "high", "step"),
    "ordinal": ("levels",),
    "halfline": ("low",),
    "interval": ("low", "high"),
    "real": (),
    "datetime": ("low", "high", "step"),
    "timedelta": ("low", "high", "step"),
}


class Schema:
    """The ordered column specs of a table.

    >>> schema = Schema([ColumnSpec("x", "real")])
    >>> schema["x"].kind, len(schema), schema.names
    ('real', 1, ['x'])
    """

    def __init__(self, columns: list[ColumnSpec]):
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise SchemaError(f"repeated column names in the schema: {sorted({n for n in names if names.count(n) > 1})}")
        self.columns = list(columns)

    def __iter__(self) -> Iterator[ColumnSpec]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __getitem__(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"no column {name!r} in the schema; columns: {self.names}")

    @property
    def names(self) -> list[str]:
        """Column names in table order."""
        return [c.name for c in self.columns]

    def discrete_names(self) -> set[str]:
        """Names of the columns with a finite set of values (``DISCRETE_KINDS``)."""
        return {c.name for c in self.columns if c.kind in DISCRETE_KINDS}

    def categorical_names(self) -> set[str]:
        """Names of the categorical and constant columns: the quality report's categorical columns (every
        other kind, lattices and ordinals included, is numerical there, as SDMetrics would detect it)."""
        return {c.name for c in self.columns if c.kind in ("categorical", "constant")}

    def describe(self) -> str:
        """A table of column, kind and allowed values, for printing (runs of alike columns on one line).

        >>> print(Schema([ColumnSpec("x", "halfline"), ColumnSpec("y", "halfline")]).describe())
        column           kind      allowed values  chosen
        x .. y (2 cols)  halfline  halfline >= 0   inferred
        """
        rows = [("column", "kind", "allowed values", "chosen")]
        runs: list[list[ColumnSpec]] = []
        for column in self.columns:
            key = (column.kind, column.describe(), column.source)
            if runs and (runs[-1][0].kind, runs[-1][0].describe(), runs[-1][0].source) == key:
                runs[-1].append(column)
            else:
                runs.append([column])
        for run in runs:
            name = run[0].name if len(run) == 1 else f"{run[0].name} .. {run[-1].name} ({len(run)} cols)"
            rows.append((name, run[0].kind, run[0].describe(), run[0].source))
        widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
        return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows)

    def check_columns(self, frame) -> None:
        """Raise ``SchemaError`` naming the missing and unexpected columns of ``frame``."""
        missing = [n for n in self.names if n not in frame.columns]
        extra = [n for n in frame.columns if n not in self.names]
        if missing or extra:
            raise SchemaError(f"the table's columns do not match the schema: missing {missing}, unexpected {extra}")

    def check_values(self, frame, what: str = "data") -> None:
        """Raise ``SchemaError`` naming the first column and row whose value the schema does not allow."""
        self.check_columns(frame)
        for column in self.columns:
            good = column.valid_mask(frame[column.name])
            if not good.all():
                position = int(np.flatnonzero(~good)[0])
                value = plain_value(frame[column.name].iloc[position])
                count = int((~good).sum())
                raise SchemaError(
                    f"{what}: column {column.name!r}, row {frame.index[position]!r}: value {value!r} is not allowed "
                    f"by the schema ({column.describe()}); {count} row(s) of this column are outside"
                )

    def parse_times(self, frame):
        """``frame`` with every time column of the schema in its column's dtype: strings (a CSV file's
        dates) parsed, other resolutions and zones converted. A cell that is not a time of the column's
        sort becomes missing (``check_values`` and ``valid_mask`` report it on the frame as given).

        >>> import pandas as pd
        >>> schema = Schema([ColumnSpec("day", "datetime", low=0, high=86_400 * 10, step=86_400, dtype="datetime64[s]")])
        >>> parsed = schema.parse_times(pd.DataFrame({"day": ["1970-01-02", "not a date"]}))
        >>> str(parsed["day"].dtype), parsed["day"].tolist()
        ('datetime64[s]', [Timestamp('1970-01-02 00:00:00'), NaT])
        """
        from omegabridge.tabular import times

        frame = frame.copy()
        for column in self.columns:
            if column.kind in TIME_KINDS and column.name in frame.columns:
                ticks, missing, not_a_time = times.valid_ticks(frame[column.name], column.dtype)
                frame[column.name] = times.from_ticks(ticks, missing | not_a_time, column.dtype).set_axis(frame.index)
        return frame

    def to_dict(self) -> dict:
        """``{column: spec dict}`` in table order (the JSON of ``--schema`` and of checkpoints)."""
        return {c.name: {k: v for k, v in c.to_dict().items() if k != "name"} for c in self.columns}

    @classmethod
    def from_dict(cls, entries: Mapping, source: str = "declared") -> "Schema":
        """Inverse of ``to_dict``."""
        return cls([ColumnSpec.from_dict(str(name), entry, source) for name, entry in entries.items()])

    def __repr__(self) -> str:
        return f"Schema({', '.join(f'{c.name}: {c.describe()}' for c in self.columns)})"


def infer_schema(
    frame,
    overrides: Mapping | None = None,
    *,
    max_lattice_points: int = MAX_LATTICE_POINTS,
    max_ordinal_levels: int = MAX_ORDINAL_LEVELS,
) -> Schema:
    """Infer each column's kind from ``frame`` (see the module docstring); ``overrides`` win.

    An override may give only ``kind``; missing parameters are filled from the data
    (the categories seen, the lattice's min and max, an interval's min and max).
    Raises ``SchemaError`` for an override naming a column the frame lacks, an empty
    table, or a column with no non-missing value.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise SchemaError("the table has no rows")
    repeated = sorted({str(name) for name in frame.columns[frame.columns.duplicated()]})
    if repeated:
        raise SchemaError(f"the table repeats column names {repeated}; every column needs its own name")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise SchemaError(f"the schema overrides must be a mapping {{column: kind or {{'kind': ...}}}}, got {type(overrides).__name__}")
    overrides = dict(overrides or {})
    unknown = [name for name in overrides if name not in frame.columns]
    if unknown:
        raise SchemaError(f"the schema names columns the table lacks: {unknown}; the table has {list(frame.columns)}")
    columns = []
    for name in frame.columns:
        if not isinstance(name, str):
            raise SchemaError(f"column names must be strings, got {name!r}")
        series = frame[name]
        present = series.dropna()
        if len(present) == 0:
            raise SchemaError(f"column {name!r} has no non-missing value; drop it or declare it")
        dtype = str(series.dtype)
        missing = bool(series.isna().any())
        _refuse_unmodelled_values(name, series, present)
        if name in overrides:
            entry = overrides[name]
            if not isinstance(entry, (str, Mapping)):
                raise SchemaError(f"column {name!r}: a schema entry must be a kind name or a dict with 'kind', got {entry!r}")
            entry = {"kind": entry} if isinstance(entry, str) else dict(entry)
            _fill_parameters(name, entry, present)
            entry.setdefault("missing", missing)
            entry.setdefault("dtype", dtype)
            columns.append(ColumnSpec.from_dict(name, entry, source="declared"))
        else:
            columns.append(_infer_column(name, series, present, dtype, missing, max_lattice_points, max_ordinal_levels))
    return Schema(columns)


def _infer_column(name, series, present, dtype, missing, max_lattice_points, max_ordinal_levels) -> ColumnSpec:
    import pandas as pd

    common = dict(missing=missing, dtype=dtype)
    from omegabridge.tabular import times

    text_times = _parsed_text_times(series, present)
    if text_times is not None:  # a CSV file's times, read as text: modelled as times of pandas' default resolution
        dtype, series = text_times
        common["dtype"] = dtype
        present = series.dropna()
    if times.is_time_dtype(series.dtype):
        ticks, _ = times.ticks(present, dtype)
        if len(np.unique(ticks)) == 1:
            return ColumnSpec(name, "constant", value=plain_value(present.iloc[0]), **common)
        kind = "timedelta" if pd.api.types.is_timedelta64_dtype(series.dtype) else "datetime"
        return ColumnSpec(name, kind, low=int(ticks.min()), high=int(ticks.max()), step=times.infer_step(ticks, dtype),
                          **common)
    numeric = pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
    if not numeric and present.nunique() == 1 and not isinstance(series.dtype, pd.CategoricalDtype):
        return ColumnSpec(name, "constant", value=plain_value(present.iloc[0]), **common)
    if not numeric:
        return ColumnSpec(name, "categorical", categories=_categories(series, present), **common)
    if pd.api.types.is_integer_dtype(series.dtype):
        largest = max(abs(int(present.min())), abs(int(present.max())))
        if largest > 2**53:  # float64 (and the model's float32) would merge neighbouring values
            raise SchemaError(f"column {name!r}: integers up to {largest} are beyond 2^53, where numbers lose exactness; "
                              "declare it {'kind': 'categorical'} (values kept exactly) or {'kind': 'real'} "
                              "(modelled as floats, so nearby values merge), or rescale it")
    values = present.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise SchemaError(f"column {name!r}: infinite values cannot be modelled (row {present.index[~np.isfinite(values)][0]!r})")
    distinct = np.unique(values)
    if len(distinct) == 1:
        return ColumnSpec(name, "constant", value=plain_value(present.iloc[0]), **common)
    if (distinct == np.rint(distinct)).all() and distinct[-1] - distinct[0] + 1 <= max_lattice_points:
        return ColumnSpec(name, "lattice", low=float(distinct[0]), high=float(distinct[-1]), step=1.0, **common)
    if len(distinct) <= max_ordinal_levels:
        return ColumnSpec(name, "ordinal", levels=distinct.tolist(), **common)
    if distinct[0] >= 0:
        return ColumnSpec(name, "halfline", low=0.0, **common)
    return ColumnSpec(name, "real", **common)


def _refuse_unmodelled_values(name: str, series, present) -> None:
    """Complex numbers, and cells holding containers (lists, dicts, sets, arrays), fit no kind: refused by name."""
    import pandas as pd

    if pd.api.types.is_complex_dtype(series.dtype):
        raise SchemaError(f"column {name!r}: complex numbers fit no column kind; split it into real and imaginary columns")
    if series.dtype == object:
        for row, value in present.items():
            if isinstance(value, (list, tuple, dict, set, frozenset, np.ndarray, complex, np.complexfloating)):
                raise SchemaError(f"column {name!r}, row {row!r}: a {type(value).__name__} value fits no column kind; "
                                  "give one plain value per cell")


#: Text a CSV file holds times as: ISO 8601 dates and date-times without a zone, and timedeltas as pandas writes them.
_TEXT_TIMES = {"datetime": r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?",
               "timedelta": r"-?\d+ days?(?: [+-]?\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)?"}


def _parsed_text_times(series, present):
    """(dtype, ``series`` parsed in it) when every value of ``present`` (its non-missing cells) is text of one
    sort of ``_TEXT_TIMES`` that parses, at pandas' default resolution; None otherwise."""
    import pandas as pd

    if not (pd.api.types.is_object_dtype(present.dtype) or pd.api.types.is_string_dtype(present.dtype)):
        return None
    if not all(isinstance(value, str) for value in present):
        return None
    from omegabridge.tabular import times

    text = present.astype(str)
    for kind, pattern in _TEXT_TIMES.items():
        if text.str.fullmatch(pattern).all():
            dtype = f"{kind}64[us]"
            ticks, missing, not_a_time = times.valid_ticks(series, dtype)
            if not not_a_time.any():
                return dtype, times.from_ticks(ticks, missing, dtype).set_axis(series.index)
    return None


def _fill_parameters(name: str, entry: dict, present) -> None:
    """Fill an override's missing parameters from the column's values."""
    kind = entry.get("kind")
    if kind == "categorical" and "categories" not in entry:
        entry["categories"] = _categories(present, present)
        return
    if kind == "constant" and "value" not in entry:
        entry["value"] = plain_value(present.iloc[0])
        return
    if kind in TIME_KINDS:
        from omegabridge.tabular import times

        if not times.is_time_dtype(present.dtype):  # strings declared as times: pandas' default resolution
            entry.setdefault("dtype", f"{kind}64[us]")
        dtype = entry.get("dtype", str(present.dtype))
        try:
            ticks, _ = times.ticks(present, dtype)
        except ValueError as error:
            raise SchemaError(f"column {name!r}: {error}, so the column cannot be {kind}") from None
        except TypeError:
            raise SchemaError(f"column {name!r}: dtype {dtype!r} is not a {kind}64 dtype") from None
        entry.setdefault("low", int(ticks.min()))
        entry.setdefault("high", int(ticks.max()))
        entry.setdefault("step", times.infer_step(ticks, dtype))
        return
    if kind in ("lattice", "interval", "ordinal"):
        import pandas as pd

        numbers = pd.to_numeric(present, errors="coerce")
        if numbers.isna().any():
            row = numbers.index[numbers.isna()][0]
            raise SchemaError(f"column {name!r}, row {row!r}: {present[row]!r} is not a number, so the column cannot be {kind}")
        values = numbers.to_numpy(dtype=np.float64)
        if kind == "ordinal":
            entry.setdefault("levels", np.unique(values).tolist())
        else:
            entry.setdefault("low", float(values.min()))
            entry.setdefault("high", float(values.max()))


def _categories(series, present) -> list:
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):  # the dtype's order, but only the levels the data has
        seen = set(present.unique())
        return [plain_value(v) for v in series.cat.categories if v in seen]
    try:
        return sorted(plain_value(v) for v in present.unique())
    except TypeError:  # mixed types: keep order of first appearance
        return [plain_value(v) for v in present.unique()]


def plain_value(value):
    """A numpy scalar as the Python value it holds (for JSON and for stable equality).

    >>> plain_value(np.int64(3)), plain_value("a")
    (3, 'a')
    """
    return value.item() if isinstance(value, np.generic) else value


def _number(where: str, name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SchemaError(f"{where}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise SchemaError(f"{where}: {name} must be finite, got {value!r}")
    return number


def _short(value: float) -> str:
    return f"{value:g}"
