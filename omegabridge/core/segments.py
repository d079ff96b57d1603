"""The segment table: the compiled row layout every backend reads, and membership in it.

A domain (``omegabridge.core.domains``) compiles to one ``Segment`` per factor: its kind,
first column, width and parameters; a field (a factor with ``shape=``) is one segment with a
repeat count, so the table stays short however wide the layout. ``SegmentTable`` packs the
segments for the native kernels (``as_tensors``) and, for the torch code, gathers the columns
of each kind once per device (``kind_columns``), which ``membership`` and ``project`` use.

Example:
    >>> import omegabridge as ob
    >>> table = ob.Product([ob.Interval(-1.0, 1.0), ob.Categorical(3), ob.Real()]).segment_table()
    >>> [segment.kind.name for segment in table.segments]
    ['INTERVAL', 'CATEGORICAL', 'REAL']
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import weakref
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import torch

__all__ = [
    "Kind", "Segment", "SegmentTable", "KindColumns", "ColumnGroup", "kind_columns", "cast_like", "gather_group",
    "scatter_group", "membership", "project",
]


class Kind(enum.IntEnum):
    """Segment kinds; the integer values are part of the native kernels' ABI."""

    REAL = 0
    INTERVAL = 1
    HALFLINE_LOWER = 2  # [low, inf)
    HALFLINE_UPPER = 3  # (-inf, high]
    LATTICE = 4
    BINARY = 5
    CATEGORICAL = 6
    SPHERE = 7


@dataclass(frozen=True)
class Segment:
    """One row of the segment table: a factor's kind, columns and parameters.

    ``low``/``high`` are the interval ends (or the half-line's finite end, or the
    lattice's first and last point); ``step`` is the lattice spacing; ``points``
    is the number of lattice points, or the group size K of a categorical, or
    the dimension d of a sphere. ``repeat`` is a field's element count: the segment
    covers ``repeat`` elements of ``width`` columns each, element r at ``offset + r * width``,
    so kernels find an element's parameters by arithmetic.
    """

    kind: Kind
    offset: int
    width: int
    low: float = 0.0
    high: float = 0.0
    step: float = 0.0
    points: int = 0
    repeat: int = 1

    @property
    def columns(self) -> int:
        """Columns the segment covers: ``repeat * width``."""
        return self.repeat * self.width


_TABLE_KEYS = itertools.count(1)
_TABLES: "weakref.WeakValueDictionary[int, SegmentTable]" = weakref.WeakValueDictionary()


class SegmentTable:
    """The compiled layout: one segment per factor, plus index tensors for the reference.

    ``as_tensors()`` gives the packed arrays native kernels take: ``kinds``
    (int32), ``offsets``/``widths``/``points`` (int64) and ``parameters`` (float64,
    columns low, high, step).

    >>> import omegabridge as ob
    >>> table = ob.Product([ob.HalfLine(low=0.0), ob.Categorical(3)]).segment_table()
    >>> table.width, len(table.segments)
    (4, 2)
    """

    def __init__(self, segments: Sequence[Segment], domain=None):
        # ``domain`` (an omegabridge.core.domains.Domain, optional) names the factors in error messages.
        # ``key`` names the table where only plain values can pass (the torch.library ops' arguments).
        self.key = next(_TABLE_KEYS)
        _TABLES[self.key] = self
        self.segments = list(segments)
        self.domain = domain
        self.width = sum(segment.columns for segment in self.segments)
        covered = 0
        for segment in self.segments:
            if segment.offset != covered:
                raise ValueError(f"segment table: segment at column {segment.offset} leaves a gap or overlap")
            if segment.repeat < 1:
                raise ValueError(f"segment table: segment at column {segment.offset} repeats {segment.repeat} times")
            covered += segment.columns

    @staticmethod
    def with_key(key: int) -> "SegmentTable":
        """The live table whose ``key`` is ``key`` (a LookupError once it has been garbage-collected)."""
        table = _TABLES.get(key)
        if table is None:
            raise LookupError(f"no segment table with key {key} is alive")
        return table

    @cached_property
    def elements(self) -> list[Segment]:
        """One segment per element, a field's ``repeat`` unrolled (offset + r * width): for code that
        builds per-column index arrays once (the torch reference, the Triton plan, error messages)."""
        return [
            dataclasses.replace(segment, offset=segment.offset + r * segment.width, repeat=1)
            for segment in self.segments
            for r in range(segment.repeat)
        ]

    # --- packed form for native backends -------------------------------------------------
    def as_tensors(self) -> dict[str, torch.Tensor]:
        """Packed arrays: kinds, offsets, widths, points, repeats and parameters (low, high, step)."""
        return {
            "kinds": torch.tensor([int(s.kind) for s in self.segments], dtype=torch.int32),
            "offsets": torch.tensor([s.offset for s in self.segments], dtype=torch.int64),
            "widths": torch.tensor([s.width for s in self.segments], dtype=torch.int64),
            "points": torch.tensor([s.points for s in self.segments], dtype=torch.int64),
            "repeats": torch.tensor([s.repeat for s in self.segments], dtype=torch.int64),
            "parameters": torch.tensor([[s.low, s.high, s.step] for s in self.segments], dtype=torch.float64),
        }

    # --- index sets the torch reference uses (one gather per kind, no loop over columns) --
    def columns_of(self, *kinds: Kind) -> list[Segment]:
        """The elements (``elements``) of the given kinds, in layout order."""
        return [segment for segment in self.elements if segment.kind in kinds]

    @cached_property
    def column_kinds(self) -> torch.Tensor:
        """Kind of every column, int64 (width,)."""
        result = torch.empty(self.width, dtype=torch.int64)
        for segment in self.segments:
            result[segment.offset : segment.offset + segment.columns] = int(segment.kind)
        return result

    def describe_column(self, column: int) -> str:
        """Human-readable name of a column, for error messages: 'column 5 (factor 1: Categorical(4), entry 2)'.

        A column of a field names its element: 'column 70 (factor 0: Lattice(0.0, 255.0, step=1.0,
        shape=(3, 8, 8)), element (1, 0, 6))'.
        """
        if self.domain is not None:
            offset = 0
            for index, factor in enumerate(getattr(self.domain, "factors", [self.domain])):
                if offset <= column < offset + factor.width:
                    element, entry = divmod(column - offset, factor.element_width)
                    where = f"column {column} (factor {index}: {factor!r}"
                    if factor.shape:
                        position = tuple(int(i) for i in torch.unravel_index(torch.tensor(element), factor.shape))
                        where += f", element {position}"
                    if factor.element_width > 1:
                        where += f", entry {entry}"
                    return where + ")"
                offset += factor.width
        for index, segment in enumerate(self.elements):
            if segment.offset <= column < segment.offset + segment.width:
                factor = _factor_repr(segment)
                if segment.width > 1:
                    return f"column {column} (factor {index}: {factor}, entry {column - segment.offset})"
                return f"column {column} (factor {index}: {factor})"
        return f"column {column}"

    def contains(self, x: torch.Tensor) -> torch.Tensor:
        """Bool per row: membership in the precision of ``x`` (see ``membership``)."""
        return membership(x, self).all(dim=1)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest member of the domain for each row."""
        return project(x, self)


def _factor_repr(segment: Segment) -> str:
    kind = segment.kind
    if kind == Kind.REAL:
        return "Real()"
    if kind == Kind.INTERVAL:
        return f"Interval({segment.low}, {segment.high})"
    if kind == Kind.HALFLINE_LOWER:
        return f"HalfLine(low={segment.low})"
    if kind == Kind.HALFLINE_UPPER:
        return f"HalfLine(high={segment.high})"
    if kind == Kind.LATTICE:
        return f"Lattice({segment.low}, {segment.high}, step={segment.step})"
    if kind == Kind.BINARY:
        return "Binary()"
    if kind == Kind.CATEGORICAL:
        return f"Categorical({segment.points})"
    return f"Sphere({segment.points})"


# ----------------------------------------------------------------------------------------
# The columns of each kind, gathered once per (table, device)
# ----------------------------------------------------------------------------------------
@dataclass
class ColumnGroup:
    """Segments of one multi-column kind padded to a (groups, max width) index matrix."""

    index: torch.Tensor  # long (G, W): column of entry j of group g (padding repeats column 0)
    mask: torch.Tensor  # bool (G, W): entry is real
    sizes: torch.Tensor  # long (G,)


@dataclass
class KindColumns:
    """The columns of each kind as index tensors on one device, with their parameters (float64):
    what the torch code gathers once instead of looping over columns."""

    real: torch.Tensor
    interval: torch.Tensor
    interval_low: torch.Tensor
    interval_high: torch.Tensor
    lower: torch.Tensor
    lower_end: torch.Tensor
    upper: torch.Tensor
    upper_end: torch.Tensor
    binary: torch.Tensor
    lattice: torch.Tensor
    lattice_low: torch.Tensor
    lattice_step: torch.Tensor
    lattice_points: torch.Tensor
    categorical: ColumnGroup
    sphere: ColumnGroup


def _kind_offsets(table: SegmentTable, kind: Kind, device) -> torch.Tensor:
    return torch.tensor([s.offset for s in table.columns_of(kind)], dtype=torch.long, device=device)


def _parameter(table: SegmentTable, kind: Kind, field: str, device) -> torch.Tensor:
    return torch.tensor([getattr(s, field) for s in table.columns_of(kind)], dtype=torch.float64, device=device)


def _group(table: SegmentTable, kind: Kind, device) -> ColumnGroup:
    segments = table.columns_of(kind)
    widest = max((s.width for s in segments), default=1)
    entry = torch.arange(widest, dtype=torch.long)
    offsets = torch.tensor([s.offset for s in segments], dtype=torch.long)
    sizes = torch.tensor([s.width for s in segments], dtype=torch.long)
    mask = entry[None, :] < sizes[:, None]
    index = torch.where(mask, offsets[:, None] + entry[None, :], offsets[:, None])
    return ColumnGroup(index.to(device), mask.to(device), sizes.to(device))


def kind_columns(table: SegmentTable, device: torch.device) -> KindColumns:
    """The table's ``KindColumns`` on ``device``, built once and cached on the table.

    >>> import torch, omegabridge as ob
    >>> kind_columns(ob.Product([ob.Real(), ob.Binary()]).segment_table(), torch.device("cpu")).binary
    tensor([1])
    """
    cache = table.__dict__.setdefault("_reference_plans", {})
    key = str(device)
    if key not in cache:
        cache[key] = KindColumns(
            real=_kind_offsets(table, Kind.REAL, device),
            interval=_kind_offsets(table, Kind.INTERVAL, device),
            interval_low=_parameter(table, Kind.INTERVAL, "low", device),
            interval_high=_parameter(table, Kind.INTERVAL, "high", device),
            lower=_kind_offsets(table, Kind.HALFLINE_LOWER, device),
            lower_end=_parameter(table, Kind.HALFLINE_LOWER, "low", device),
            upper=_kind_offsets(table, Kind.HALFLINE_UPPER, device),
            upper_end=_parameter(table, Kind.HALFLINE_UPPER, "high", device),
            binary=_kind_offsets(table, Kind.BINARY, device),
            lattice=_kind_offsets(table, Kind.LATTICE, device),
            lattice_low=_parameter(table, Kind.LATTICE, "low", device),
            lattice_step=_parameter(table, Kind.LATTICE, "step", device),
            lattice_points=torch.tensor(
                [s.points for s in table.columns_of(Kind.LATTICE)], dtype=torch.long, device=device
            ),
            categorical=_group(table, Kind.CATEGORICAL, device),
            sphere=_group(table, Kind.SPHERE, device),
        )
    return cache[key]


def cast_like(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` in the dtype of ``like`` (parameters are kept in float64)."""
    return values.to(dtype=like.dtype)


def gather_group(z: torch.Tensor, group: ColumnGroup, fill: float) -> torch.Tensor:
    """(rows, groups, widest) entries of each group, ``fill`` in the padding."""
    values = z[:, group.index]
    return torch.where(group.mask[None], values, torch.full_like(values, fill))


def scatter_group(out: torch.Tensor, group: ColumnGroup, values: torch.Tensor) -> None:
    """Write (rows, groups, widest) ``values`` back to the groups' columns of ``out`` (padding dropped)."""
    index = group.index[group.mask]
    out[:, index] = values[:, group.mask]


# ----------------------------------------------------------------------------------------
# Membership and projection
# ----------------------------------------------------------------------------------------
def _lattice_nearest(x: torch.Tensor, plan: KindColumns) -> torch.Tensor:
    cols = plan.lattice
    position = torch.round((x[:, cols].to(torch.float64) - plan.lattice_low) / plan.lattice_step)
    position = torch.minimum(torch.clamp(position, min=0.0), (plan.lattice_points - 1).to(torch.float64))
    position = torch.nan_to_num(position, nan=0.0)
    return (plan.lattice_low + position * plan.lattice_step).to(x.dtype)


def membership(x: torch.Tensor, table: SegmentTable) -> torch.Tensor:
    """Bool (n, width): is each column's value in its factor, in the precision of x?

    Bounds and lattice points are rounded to x's dtype; a categorical group is
    valid when it is exactly one-hot; a sphere when | |x|^2 - 1 | <= 8 d eps.
    Every column of a multi-column factor carries the factor's verdict.
    """
    plan = kind_columns(table, x.device)
    finite = torch.isfinite(x)
    ok = finite.clone()
    if plan.interval.numel():
        v = x[:, plan.interval]
        ok[:, plan.interval] &= (v >= cast_like(plan.interval_low, x)) & (v <= cast_like(plan.interval_high, x))
    if plan.lower.numel():
        ok[:, plan.lower] &= x[:, plan.lower] >= cast_like(plan.lower_end, x)
    if plan.upper.numel():
        ok[:, plan.upper] &= x[:, plan.upper] <= cast_like(plan.upper_end, x)
    if plan.binary.numel():
        v = x[:, plan.binary]
        ok[:, plan.binary] &= (v == 0) | (v == 1)
    if plan.lattice.numel():
        ok[:, plan.lattice] &= x[:, plan.lattice] == _lattice_nearest(x, plan)
    if plan.categorical.index.numel():
        group = plan.categorical
        values = gather_group(x, group, 0.0)
        binary = ((values == 0) | (values == 1)) | ~group.mask[None]
        valid = binary.all(-1) & (values.sum(-1) == 1) & gather_group(finite, group, True).all(-1)
        scatter_group(ok, group, valid[..., None].expand_as(values))
    if plan.sphere.index.numel():
        group = plan.sphere
        values = gather_group(x, group, 0.0)
        tolerance = 8.0 * group.sizes.to(torch.float64) * torch.finfo(x.dtype).eps
        error = (values.to(torch.float64).pow(2).sum(-1) - 1.0).abs()
        valid = (error <= tolerance[None]) & gather_group(finite, group, True).all(-1)
        scatter_group(ok, group, valid[..., None].expand_as(values))
    return ok


def project(x: torch.Tensor, table: SegmentTable) -> torch.Tensor:
    """The nearest member of the domain to each row (Euclidean, per factor)."""
    plan = kind_columns(table, x.device)
    out = x.clone()
    if plan.interval.numel():
        v = x[:, plan.interval]
        out[:, plan.interval] = torch.minimum(torch.maximum(v, cast_like(plan.interval_low, x)), cast_like(plan.interval_high, x))
    if plan.lower.numel():
        out[:, plan.lower] = torch.maximum(x[:, plan.lower], cast_like(plan.lower_end, x))
    if plan.upper.numel():
        out[:, plan.upper] = torch.minimum(x[:, plan.upper], cast_like(plan.upper_end, x))
    if plan.binary.numel():
        out[:, plan.binary] = (x[:, plan.binary] >= 0.5).to(x.dtype)
    if plan.lattice.numel():
        out[:, plan.lattice] = _lattice_nearest(x, plan)
    if plan.categorical.index.numel():
        group = plan.categorical
        index = gather_group(x, group, -math.inf).argmax(-1)
        scatter_group(out, group, torch.nn.functional.one_hot(index, group.index.shape[1]).to(x.dtype))
    if plan.sphere.index.numel():
        group = plan.sphere
        values = gather_group(x, group, 0.0)
        norm = torch.linalg.vector_norm(values, dim=-1, keepdim=True)
        unit = torch.zeros_like(values)
        unit[..., 0] = 1.0
        scatter_group(out, group, torch.where(norm > 0, values / torch.where(norm > 0, norm, 1.0), unit))
    return out
