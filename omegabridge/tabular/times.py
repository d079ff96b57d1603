"""Datetime and timedelta columns as integer ticks: what the ``datetime`` and ``timedelta`` kinds are made of.

A column's values become int64 ticks at its dtype's resolution (``datetime64[s]`` counts
seconds, pandas' default ``datetime64[us]`` microseconds), so dates outside pandas'
nanosecond range (before 1677, after 2262) work wherever the dtype's unit holds them. A
zoned column is counted in its local wall time (a daily series at local midnight stays on
midnights through daylight-saving changes) and comes back in its zone: a wall time that does
not exist there (the spring-forward hour) moves forward to the next one, an ambiguous one
(the fall-back hour) is read as standard time. The ``step`` of a column is the coarsest unit
of ``UNITS`` that all its values are whole multiples of (days for dates at midnight).

Example:
    >>> import pandas as pd
    >>> days = pd.Series(pd.to_datetime(["2020-01-01", "2020-01-03"]))
    >>> values, missing = ticks(days, "datetime64[us]")
    >>> unit_name(infer_step(values, "datetime64[us]"), "datetime64[us]")
    '1 day'
    >>> from_ticks(values, missing, "datetime64[us]").tolist() == days.tolist()
    True
"""

from __future__ import annotations

import numpy as np

__all__ = ["UNITS", "is_time_dtype", "resolution", "ticks", "valid_ticks", "from_ticks", "ticks_of", "infer_step", "unit_name",
           "describe_ticks"]

#: Units a column's step is inferred in, coarsest first, with their length in nanoseconds.
UNITS = (("day", 86_400 * 10**9), ("hour", 3_600 * 10**9), ("minute", 60 * 10**9), ("second", 10**9),
         ("millisecond", 10**6), ("microsecond", 10**3), ("nanosecond", 1))
_NANOSECONDS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def is_time_dtype(dtype) -> bool:
    """Whether a pandas dtype is a datetime (zoned or not) or timedelta dtype."""
    import pandas as pd

    return pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype)


def resolution(dtype: str) -> tuple[str, str | None, bool]:
    """(unit, time zone or None, is a timedelta) of a datetime / timedelta dtype string.

    >>> resolution("datetime64[s, UTC]"), resolution("timedelta64[ms]")
    (('s', 'UTC', False), ('ms', None, True))
    """
    import pandas as pd

    parsed = pd.api.types.pandas_dtype(dtype)
    if isinstance(parsed, pd.DatetimeTZDtype):
        return parsed.unit, str(parsed.tz), False
    if parsed.kind not in "mM":
        raise ValueError(f"{dtype!r} is not a datetime or timedelta dtype")
    return np.datetime_data(parsed)[0], None, parsed.kind == "m"


def ticks(values, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ticks at ``dtype``'s resolution, missing mask) of a Series of datetimes / timedeltas.

    Values of another resolution are converted; strings and Timestamps in an object Series are
    parsed; anything that is not a time of the right sort (a number, an unparsable string, a
    zoned time in a column without zone) is reported as -1 in a third state: ``ticks`` raises
    ``ValueError`` naming the first such position, ``valid_ticks`` returns a mask instead.
    """
    result, missing, bad = _ticks(values, dtype)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise ValueError(f"position {position}: {values.iloc[position]!r} is not a {dtype} value")
    return result, missing


def valid_ticks(values, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ticks, missing mask, not-a-time mask): ``ticks`` without raising."""
    return _ticks(values, dtype)


def _ticks(values, dtype: str):
    import pandas as pd

    unit, zone, is_timedelta = resolution(dtype)
    series = pd.Series(values).reset_index(drop=True)
    missing = series.isna().to_numpy()
    result = np.zeros(len(series), dtype=np.int64)
    bad = np.zeros(len(series), dtype=bool)
    kind = "m" if is_timedelta else "M"
    if is_timedelta and pd.api.types.is_timedelta64_dtype(series.dtype):
        result = series.to_numpy(dtype=f"m8[{unit}]").view(np.int64).copy()
    elif not is_timedelta and pd.api.types.is_datetime64_any_dtype(series.dtype):
        if getattr(series.dt, "tz", None) is not None:
            if zone is None:  # a zoned time has no place in a column without a zone
                bad = ~missing
            else:
                series = series.dt.tz_convert(zone)
            series = series.dt.tz_localize(None)
        result = series.to_numpy(dtype=f"M8[{unit}]").view(np.int64).copy()
    else:  # an object column (strings, Timestamps, ...), one value at a time
        for position, value in enumerate(series):
            if missing[position]:
                continue
            raw = _parse(value, is_timedelta, zone)
            if raw is None:
                bad[position] = True
            else:
                result[position] = raw.astype(f"{kind}8[{unit}]").view(np.int64)
    result[missing | bad] = 0
    return result, missing & ~bad, bad


def _parse(value, is_timedelta: bool, zone: str | None):
    """A numpy datetime64 (wall time in ``zone``) or timedelta64 for one value, None if it is not one."""
    import pandas as pd

    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return None  # a number is not a time (its unit would be a guess)
    try:
        stamp = pd.Timedelta(value) if is_timedelta else pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if stamp is pd.NaT:
        return None
    if not is_timedelta and stamp.tzinfo is not None:
        if zone is None:
            return None
        stamp = stamp.tz_convert(zone).tz_localize(None)
    return stamp.to_timedelta64() if is_timedelta else stamp.to_datetime64()


def from_ticks(values: np.ndarray, missing: np.ndarray, dtype: str):
    """A Series of ``dtype`` from int64 ticks (missing where ``missing``)."""
    import pandas as pd

    unit, zone, is_timedelta = resolution(dtype)
    raw = np.asarray(values, dtype=np.int64).view(f"{'m' if is_timedelta else 'M'}8[{unit}]").copy()
    raw[np.asarray(missing, dtype=bool)] = np.timedelta64("NaT") if is_timedelta else np.datetime64("NaT")
    series = pd.Series(raw)
    if zone is not None:
        series = series.dt.tz_localize(zone, ambiguous=np.zeros(len(series), dtype=bool), nonexistent="shift_forward")
    return series


def ticks_of(value, dtype: str) -> int:
    """The ticks of one datetime / timedelta (or its string) at ``dtype``'s resolution; ``ValueError`` if it is none."""
    import pandas as pd

    result, missing = ticks(pd.Series([value], dtype=object), dtype)
    if missing[0]:
        raise ValueError(f"{value!r} is missing, not a {dtype} value")
    return int(result[0])


def infer_step(values: np.ndarray, dtype: str) -> int:
    """The coarsest unit of ``UNITS`` (in ticks of ``dtype``) that every value of ``values`` is a whole multiple of."""
    unit = resolution(dtype)[0]
    per_tick = _NANOSECONDS[unit]
    for _, nanoseconds in UNITS:
        if nanoseconds < per_tick:
            break
        step = nanoseconds // per_tick
        if (np.asarray(values, dtype=np.int64) % step == 0).all():
            return step
    return 1


def unit_name(step: int, dtype: str) -> str:
    """``"1 day"``, ``"15 second"``...: a step in ticks of ``dtype`` in the coarsest unit that divides it."""
    nanoseconds = step * _NANOSECONDS[resolution(dtype)[0]]
    for name, length in UNITS:
        if nanoseconds % length == 0:
            return f"{nanoseconds // length} {name}"
    return f"{step} tick"


def describe_ticks(value: int, dtype: str) -> str:
    """One tick value as text: a date-time (wall time, no zone) or a timedelta, as pandas prints them.

    >>> describe_ticks(86_400, "datetime64[s]"), describe_ticks(90, "timedelta64[s]")
    ('1970-01-02 00:00:00', '0 days 00:01:30')
    """
    import pandas as pd

    unit, _, is_timedelta = resolution(dtype)
    raw = np.array([value], dtype=np.int64).view(f"{'m' if is_timedelta else 'M'}8[{unit}]")[0]
    return str(pd.Timedelta(raw) if is_timedelta else pd.Timestamp(raw))
