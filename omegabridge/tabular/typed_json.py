"""Schema and encoder state as plain JSON, with every non-JSON value's type tagged.

A checkpoint must load back whatever ``fit`` accepted, and must never run code on
load. Category values can be dates, time-zone-aware Timestamps, Decimals, UUIDs,
Periods, Intervals or timedeltas; pickling them would need their library's classes
at load time (``torch.load(weights_only=True)`` refuses those) and would trust the
file. So each such value is written as ``{"$type": name, ...fields}`` from which one
constructor rebuilds it, and ``from_json_data(to_json_data(x)) == x`` with the same
type is checked before anything is written (``encode_checked``). A value of a type
not listed here is refused by name, with where it sits.

Example:
    >>> import datetime, decimal
    >>> data = to_json_data({"categories": [datetime.date(2024, 2, 29), decimal.Decimal("1.10"), 2**70]})
    >>> data["categories"][0]
    {'$type': 'date', 'iso': '2024-02-29'}
    >>> from_json_data(data)["categories"][1]
    Decimal('1.10')
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import uuid
from typing import Any

import numpy as np

__all__ = ["UnsupportedValue", "to_json_data", "from_json_data", "encode_checked", "decode"]

TAG = "$type"


class UnsupportedValue(ValueError):
    """A value that cannot be stored as typed JSON and read back equal; ``where`` says where it sits."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where


def to_json_data(value: Any, where: str = "value") -> Any:
    """``value`` as JSON-safe data (dicts, lists, str, finite floats, ints, bools, None)."""
    import pandas as pd

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic) and not isinstance(value, (np.datetime64, np.timedelta64)):
        value = value.item()  # numpy scalars come back as the Python value they hold
        if isinstance(value, (bool, str, bytes)):
            return to_json_data(value, where)
    if isinstance(value, int):
        if value.bit_length() > 13_000:  # about 4000 digits: Python refuses to print longer ones
            raise UnsupportedValue(where, f"an integer of {value.bit_length()} bits is too long to store")
        return value  # Python's json keeps integers of any size exactly
    if isinstance(value, float):
        return value if math.isfinite(value) else {TAG: "float", "repr": repr(value)}
    if isinstance(value, complex):
        return {TAG: "complex", "real": to_json_data(value.real), "imag": to_json_data(value.imag)}
    if isinstance(value, bytes):
        return {TAG: "bytes", "base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (list, tuple)):
        items = [to_json_data(item, f"{where}[{index}]") for index, item in enumerate(value)]
        return items if isinstance(value, list) else {TAG: "tuple", "items": items}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and TAG not in value:
            return {key: to_json_data(item, f"{where}[{key!r}]") for key, item in value.items()}
        return {TAG: "dict", "items": [[to_json_data(k, f"{where} key"), to_json_data(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    # Order matters below: Timestamp is a datetime, which is a date.
    if isinstance(value, pd.Timestamp):
        if value is pd.NaT:
            return {TAG: "NaT"}
        # A zoned moment is stored in UTC: its wall-clock time can be ambiguous (the hour a DST change repeats).
        return {TAG: "Timestamp", "iso": value.tz_convert("UTC").tz_localize(None).isoformat() if value.tz else value.isoformat(),
                "tz": None if value.tz is None else str(value.tz), "unit": value.unit}
    if value is pd.NaT:
        return {TAG: "NaT"}
    if isinstance(value, datetime.datetime):
        zone = _zone_name(value, where)
        moment = value if zone is None else value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return {TAG: "datetime", "iso": moment.isoformat(), "tz": zone}
    if isinstance(value, datetime.date):
        return {TAG: "date", "iso": value.isoformat()}
    if isinstance(value, datetime.time):
        if value.tzinfo is not None:
            raise UnsupportedValue(where, f"a time of day with a time zone ({value!r}) cannot be stored; drop its zone")
        return {TAG: "time", "iso": value.isoformat()}
    if isinstance(value, pd.Timedelta):
        # Its count in its own unit: nanoseconds overflow int64 beyond about 292 years.
        return {TAG: "Timedelta", "count": int(value.asm8.view("i8")), "unit": value.unit}
    if isinstance(value, datetime.timedelta):
        return {TAG: "timedelta", "days": value.days, "seconds": value.seconds, "microseconds": value.microseconds}
    if isinstance(value, np.datetime64):
        return {TAG: "datetime64", "text": str(value), "unit": np.datetime_data(value.dtype)[0]}
    if isinstance(value, np.timedelta64):
        return {TAG: "timedelta64", "count": int(value.astype(np.int64)), "unit": np.datetime_data(value.dtype)[0]}
    if isinstance(value, decimal.Decimal):
        return {TAG: "Decimal", "text": str(value)}
    if isinstance(value, uuid.UUID):
        return {TAG: "UUID", "hex": value.hex}
    if isinstance(value, pd.Period):
        return {TAG: "Period", "text": str(value), "freq": value.freqstr}
    if isinstance(value, pd.Interval):
        return {TAG: "Interval", "left": to_json_data(value.left, f"{where}.left"),
                "right": to_json_data(value.right, f"{where}.right"), "closed": value.closed}
    raise UnsupportedValue(where, f"a value of type {type(value).__module__}.{type(value).__qualname__} ({value!r:.60}) cannot be stored in a checkpoint")


def from_json_data(data: Any) -> Any:
    """The value ``to_json_data`` was given (``ValueError`` on an unknown or malformed tag)."""
    import pandas as pd

    if isinstance(data, list):
        return [from_json_data(item) for item in data]
    if not isinstance(data, dict):
        return data
    if TAG not in data:
        return {key: from_json_data(item) for key, item in data.items()}
    kind = data[TAG]
    try:
        if kind == "float":
            return float(data["repr"])
        if kind == "complex":
            return complex(from_json_data(data["real"]), from_json_data(data["imag"]))
        if kind == "bytes":
            return base64.b64decode(data["base64"])
        if kind == "tuple":
            return tuple(from_json_data(item) for item in data["items"])
        if kind == "dict":
            return {from_json_data(k): from_json_data(v) for k, v in data["items"]}
        if kind == "NaT":
            return pd.NaT
        if kind == "Timestamp":
            stamp = pd.Timestamp(data["iso"]).as_unit(data["unit"])
            return stamp if data["tz"] is None else stamp.tz_localize("UTC").tz_convert(data["tz"])
        if kind == "datetime":
            moment = datetime.datetime.fromisoformat(data["iso"])
            return moment if data["tz"] is None else _localize(moment, data["tz"])
        if kind == "date":
            return datetime.date.fromisoformat(data["iso"])
        if kind == "time":
            return datetime.time.fromisoformat(data["iso"])
        if kind == "Timedelta":
            return pd.Timedelta(np.timedelta64(int(data["count"]), data["unit"]))
        if kind == "timedelta":
            return datetime.timedelta(days=data["days"], seconds=data["seconds"], microseconds=data["microseconds"])
        if kind == "datetime64":
            return np.datetime64(data["text"], data["unit"])
        if kind == "timedelta64":
            return np.timedelta64(int(data["count"]), data["unit"])
        if kind == "Decimal":
            return decimal.Decimal(data["text"])
        if kind == "UUID":
            return uuid.UUID(hex=data["hex"])
        if kind == "Period":
            return pd.Period(data["text"], freq=data["freq"])
        if kind == "Interval":
            return pd.Interval(from_json_data(data["left"]), from_json_data(data["right"]), closed=data["closed"])
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise ValueError(f"malformed {kind!r} value {data!r:.80} ({type(error).__name__}: {error})") from error
    raise ValueError(f"unknown value type tag {kind!r}")


def encode_checked(value: Any, where: str = "value") -> str:
    """The JSON text of ``value``, refused (``UnsupportedValue``) unless it reads back equal and of the same types."""
    try:
        text = json.dumps(to_json_data(value, where), allow_nan=False, separators=(",", ":"))
        restored = decode(text)
    except UnsupportedValue:
        raise
    except (ValueError, TypeError, ArithmeticError) as error:  # a value whose fields overflow or will not parse back
        raise UnsupportedValue(where, f"a value cannot be stored and read back ({type(error).__name__}: {error})") from None
    _require_same(value, restored, where)
    return text


def decode(text: str) -> Any:
    """The value of ``encode_checked``'s JSON text."""
    return from_json_data(json.loads(text))


# ----------------------------------------------------------------------------------------
def _zone_name(moment: datetime.datetime, where: str):
    zone = moment.tzinfo
    if zone is None:
        return None
    if zone is datetime.timezone.utc:
        return "UTC"
    key = getattr(zone, "key", None) or getattr(zone, "zone", None)  # zoneinfo / pytz names
    if key:
        return key
    if isinstance(zone, datetime.timezone):
        offset = zone.utcoffset(None)
        return {"offset_seconds": offset.days * 86400 + offset.seconds + offset.microseconds / 1e6}
    raise UnsupportedValue(where, f"a datetime whose zone {zone!r} has no name cannot be stored")


def _localize(utc_moment: datetime.datetime, zone):
    utc_moment = utc_moment.replace(tzinfo=datetime.timezone.utc)
    if isinstance(zone, dict):
        return utc_moment.astimezone(datetime.timezone(datetime.timedelta(seconds=zone["offset_seconds"])))
    if zone == "UTC":
        return utc_moment
    import zoneinfo

    return utc_moment.astimezone(zoneinfo.ZoneInfo(zone))


def _require_same(original: Any, restored: Any, where: str) -> None:
    """Equal and of the same type, element by element (NaN equals NaN; NaT equals NaT)."""
    if type(original) is not type(restored) and not (isinstance(original, np.generic) or isinstance(original, (tuple, list))):
        raise UnsupportedValue(where, f"{original!r:.60} would load back as {type(restored).__name__}, not {type(original).__name__}")
    if isinstance(original, dict):
        if list(original) != list(restored):
            raise UnsupportedValue(where, "the keys of a mapping would not load back")
        for key in original:
            _require_same(original[key], restored[key], f"{where}[{key!r}]")
        return
    if isinstance(original, (list, tuple)):
        if type(original) is not type(restored) or len(original) != len(restored):
            raise UnsupportedValue(where, f"a {type(original).__name__} would not load back as one")
        for index, (a, b) in enumerate(zip(original, restored)):
            _require_same(a, b, f"{where}[{index}]")
        return
    if _missing(original) and _missing(restored):
        return
    try:
        same = bool(original == restored)
    except (TypeError, ValueError, ArithmeticError):  # e.g. a signalling Decimal NaN refuses comparison
        same = False
    if isinstance(original, (datetime.datetime,)) and same:
        same = original.utcoffset() == restored.utcoffset() and str(original.tzinfo) == str(restored.tzinfo)
    if not same:
        raise UnsupportedValue(where, f"{original!r:.60} would load back as {restored!r:.60}")


def _missing(value) -> bool:
    import pandas as pd

    if value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating, np.datetime64, np.timedelta64)):
        return bool(pd.isna(value))
    return False
