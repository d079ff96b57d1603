"""Constrained domains: the factors users declare and their products.

A domain is a product of factors; each factor occupies a contiguous slice of columns of
the flat row layout. A factor with ``shape=`` is a field of that many elements (an image,
a segmentation map, a point cloud), compiled to one segment with a repeat count.
``Domain.segment_table()`` turns the factors into the table every backend reads
(``omegabridge.core.segments``).

Example:
    >>> import omegabridge as ob
    >>> domain = ob.Product([ob.Interval(-1.0, 1.0), ob.Categorical(3), ob.Real()])
    >>> domain.width
    5
    >>> [segment.kind.name for segment in domain.segment_table().segments]
    ['INTERVAL', 'CATEGORICAL', 'REAL']
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import torch

from omegabridge.core.segments import Kind, Segment, SegmentTable

__all__ = [
    "Domain",
    "Real",
    "Interval",
    "HalfLine",
    "Lattice",
    "Binary",
    "Categorical",
    "Sphere",
    "Product",
    "as_product",
]

MAX_CATEGORIES = 1 << 16
MAX_LATTICE_POINTS = 1 << 20
MAX_SPHERE_DIMENSION = 1 << 12




def _finite(owner: str, field: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {field} must be a real number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{owner}: {field} must be finite, got {number}")
    return number


def _integer(owner: str, field: str, value, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{owner}: {field} must be an integer, got {value!r}")
    number = int(value)
    if not minimum <= number <= maximum:
        raise ValueError(f"{owner}: {field} must be in [{minimum}, {maximum}], got {number}")
    return number




#: Most flat columns one row may have (a 4K RGB image is 25M): beyond it a single row is gigabytes.
MAX_WIDTH = 2**27


class Domain:
    """Base class of a constrained domain. Subclasses set the element and the methods below.

    Every factor takes ``shape=``: a *field* of that many independent copies of the
    factor (``Lattice(0, 255, shape=(3, 32, 32))`` is an 8-bit RGB image), laid out in
    C order; a categorical or sphere element keeps its K or d columns together, last.
    ``unflatten`` gives rows in that shape and ``flatten`` inverts it.
    """

    width: int = 1
    shape: tuple[int, ...] = ()
    #: columns of one element: 1, or K for a categorical, d for a sphere
    element_width: int = 1

    def _set_shape(self, shape) -> None:
        self.shape = _field_shape(self._element_repr(), shape)
        self.width = self.element_width * math.prod(self.shape)
        if self.width > MAX_WIDTH:
            raise ValueError(f"{self._element_repr()} of shape {self.shape}: {self.width} columns per row is over the "
                             f"limit of {MAX_WIDTH} (one row alone would need {self.width * 4 / 2**30:.1f} GiB)")

    @property
    def elements(self) -> int:
        """Number of elements of the field (1 for a plain factor)."""
        return math.prod(self.shape)

    def element_segments(self) -> list[Segment]:
        """The segments of one element, offsets relative to its first column."""
        raise NotImplementedError

    def segments(self) -> list[Segment]:
        """The factor's segments, offsets relative to its first column: a field is one segment
        whose ``repeat`` is its element count."""
        element = self.element_segments()
        if not self.shape:
            return element
        (segment,) = element  # every kind's element is one segment
        return [dataclasses.replace(segment, repeat=self.elements)]

    @property
    def reach(self) -> float:
        """How far the domain's farthest point lies from the origin (the bridge's start), per
        coordinate: max |low|, |high| over interval and lattice elements, 1 for categorical, binary,
        sphere and unbounded ones (no scale is known without data). Sets the default schedule.

        >>> import omegabridge as ob
        >>> ob.Product([ob.Lattice(0, 255, shape=(3, 2, 2)), ob.Categorical(10)]).reach
        255.0
        """
        reach = 1.0
        for factor in getattr(self, "factors", [self]):
            for segment in factor.element_segments():
                if segment.kind in (Kind.INTERVAL, Kind.LATTICE):
                    reach = max(reach, abs(segment.low), abs(segment.high))
        return reach

    def segment_table(self) -> "SegmentTable":
        """Compile this domain into the segment table all backends read."""
        return SegmentTable(self.segments(), domain=self)

    @property
    def view_shape(self) -> tuple[int, ...]:
        """Shape of one row of ``unflatten``: the field's shape, then K or d for a categorical or sphere."""
        return self.shape + ((self.element_width,) if self._has_element_axis else ())

    _has_element_axis = False

    def unflatten(self, x: torch.Tensor):
        """Rows ``x`` of shape (n, width) as (n, *view_shape) (a view where ``x`` allows; a Product gives a list).

        >>> import torch, omegabridge as ob
        >>> ob.Lattice(0, 255, shape=(3, 2, 2)).unflatten(torch.zeros(5, 12)).shape
        torch.Size([5, 3, 2, 2])
        >>> ob.Categorical(4, shape=(2,)).unflatten(torch.zeros(5, 8)).shape
        torch.Size([5, 2, 4])
        """
        _check_rows(x, self.width, f"unflatten: {self!r}")
        return x.reshape(x.shape[0], *self.view_shape)

    def flatten(self, value) -> torch.Tensor:
        """Inverse of ``unflatten``: a tensor of shape (n, *view_shape) (a list of them for a Product) as (n, width).

        >>> import torch, omegabridge as ob
        >>> ob.Sphere(3, shape=(4,)).flatten(torch.zeros(2, 4, 3)).shape
        torch.Size([2, 12])
        """
        return _flatten_factor(self, value, f"flatten: {self!r}")

    def contains(self, x: torch.Tensor) -> torch.Tensor:
        """Bool per row: does the row lie in the domain (in the precision of ``x``)?

        >>> import torch, omegabridge as ob
        >>> ob.Interval(0.0, 1.0).contains(torch.tensor([[0.5], [2.0]]))
        tensor([ True, False])
        """
        return self.segment_table().contains(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The nearest point of the domain to each row (float rows in the flat layout).

        >>> import torch, omegabridge as ob
        >>> ob.Lattice(0, 4, step=1).project(torch.tensor([[2.4], [9.0]]))
        tensor([[2.],
                [4.]])
        """
        return self.segment_table().project(x)

    def _element_repr(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        text = self._element_repr()
        return text if not self.shape else f"{text[:-1]}, shape={self.shape})"

    def __mul__(self, other: "Domain") -> "Product":
        return Product([self, other])


class Real(Domain):
    """The real line: no constraint and no singular drift.

    >>> Real().width
    1
    """

    def __init__(self, *, shape=()):
        self._set_shape(shape)

    def element_segments(self) -> list[Segment]:
        return [Segment(Kind.REAL, 0, 1)]

    def _element_repr(self) -> str:
        return "Real()"


class Interval(Domain):
    """A closed interval [low, high].

    >>> Interval(-1.0, 1.0)
    Interval(-1.0, 1.0)
    """

    def __init__(self, low: float, high: float, *, shape=()):
        self.low = _finite("Interval", "low", low)
        self.high = _finite("Interval", "high", high)
        if not self.low < self.high:
            raise ValueError(f"Interval: low ({self.low}) must be < high ({self.high})")
        self._set_shape(shape)

    def element_segments(self) -> list[Segment]:
        return [Segment(Kind.INTERVAL, 0, 1, low=self.low, high=self.high)]

    def _element_repr(self) -> str:
        return f"Interval({self.low}, {self.high})"


class HalfLine(Domain):
    """A half-line: ``HalfLine(low=a)`` is [a, inf), ``HalfLine(high=b)`` is (-inf, b].

    >>> HalfLine(low=0.0)
    HalfLine(low=0.0)
    """

    def __init__(self, low: float | None = None, high: float | None = None, *, shape=()):
        if (low is None) == (high is None):
            raise ValueError("HalfLine: give exactly one of low= or high=")
        self.low = None if low is None else _finite("HalfLine", "low", low)
        self.high = None if high is None else _finite("HalfLine", "high", high)
        self._set_shape(shape)

    def element_segments(self) -> list[Segment]:
        if self.low is not None:
            return [Segment(Kind.HALFLINE_LOWER, 0, 1, low=self.low)]
        return [Segment(Kind.HALFLINE_UPPER, 0, 1, high=self.high)]

    def _element_repr(self) -> str:
        return f"HalfLine(low={self.low})" if self.low is not None else f"HalfLine(high={self.high})"


class Lattice(Domain):
    """Equally spaced points {low, low + step, ..., high} (ordinal values, counts, pixels).

    >>> Lattice(0, 16, step=1).points
    17
    """

    def __init__(self, low: float, high: float, step: float = 1.0, *, shape=()):
        self.low = _finite("Lattice", "low", low)
        self.high = _finite("Lattice", "high", high)
        self.step = _finite("Lattice", "step", step)
        if self.step <= 0:
            raise ValueError(f"Lattice: step must be > 0, got {self.step}")
        if not self.low < self.high:
            raise ValueError(f"Lattice: low ({self.low}) must be < high ({self.high})")
        intervals = (self.high - self.low) / self.step
        rounded = round(intervals)
        if abs(intervals - rounded) > 1e-9 * max(1.0, intervals):
            raise ValueError(
                f"Lattice: step ({self.step}) must divide the range high - low ({self.high - self.low})"
            )
        self.points = rounded + 1
        if self.points > MAX_LATTICE_POINTS:
            raise ValueError(f"Lattice: at most {MAX_LATTICE_POINTS} points, got {self.points}")
        self._set_shape(shape)

    def element_segments(self) -> list[Segment]:
        return [Segment(Kind.LATTICE, 0, 1, low=self.low, high=self.high, step=self.step, points=self.points)]

    def _element_repr(self) -> str:
        return f"Lattice({self.low}, {self.high}, step={self.step})"


class Binary(Domain):
    """The two points {0, 1} (a lattice with K = 2 and a closed-form drift).

    >>> Binary().width
    1
    """

    def __init__(self, *, shape=()):
        self._set_shape(shape)

    def element_segments(self) -> list[Segment]:
        return [Segment(Kind.BINARY, 0, 1, low=0.0, high=1.0, step=1.0, points=2)]

    def _element_repr(self) -> str:
        return "Binary()"


class Categorical(Domain):
    """K categories as the one-hot vertices e_1..e_K of R^K (K columns).

    >>> Categorical(4).width
    4
    """

    _has_element_axis = True

    def __init__(self, categories: int, *, shape=()):
        self.categories = _integer("Categorical", "categories (K)", categories, 2, MAX_CATEGORIES)
        self.element_width = self.categories
        self._set_shape(shape)

    def element_segments(self) -> list[Segment]:
        return [Segment(Kind.CATEGORICAL, 0, self.categories, points=self.categories)]

    def _element_repr(self) -> str:
        return f"Categorical({self.categories})"


class Sphere(Domain):
    """The unit sphere S^{d-1} in R^d (d columns), with surface measure.

    >>> Sphere(3).width
    3
    """

    _has_element_axis = True

    def __init__(self, dimension: int, *, shape=()):
        self.dimension = _integer("Sphere", "dimension (d)", dimension, 2, MAX_SPHERE_DIMENSION)
        self.element_width = self.dimension
        self._set_shape(shape)

    def element_segments(self) -> list[Segment]:
        return [Segment(Kind.SPHERE, 0, self.dimension, points=self.dimension)]

    def _element_repr(self) -> str:
        return f"Sphere({self.dimension})"


class Product(Domain):
    """The product of factors, laid side by side in the flat row layout.

    Nested products are flattened.

    >>> Product([Interval(0, 1), Categorical(3)]).width
    4
    """

    def __init__(self, factors: Iterable[Domain]):
        if isinstance(factors, Domain):
            raise ValueError("Product: factors must be a list of domains, got a single domain")
        flat: list[Domain] = []
        for position, factor in enumerate(factors):
            if isinstance(factor, Product):
                flat.extend(factor.factors)
            elif isinstance(factor, Domain):
                flat.append(factor)
            else:
                raise ValueError(f"Product: factor {position} is not a domain: {factor!r}")
        if not flat:
            raise ValueError("Product: factors must not be empty")
        self.factors: list[Domain] = flat
        self.width = sum(factor.width for factor in flat)

    def segments(self) -> list[Segment]:
        result = []
        offset = 0
        for factor in self.factors:
            for segment in factor.segments():
                result.append(dataclasses.replace(segment, offset=offset + segment.offset))
            offset += factor.width
        return result

    def unflatten(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each factor's columns of ``x`` in its view shape (see ``Domain.unflatten``), in order.

        >>> import torch
        >>> image = Product([Lattice(0, 255, shape=(3, 4, 4)), Categorical(10)])
        >>> [v.shape for v in image.unflatten(torch.zeros(2, 58))]
        [torch.Size([2, 3, 4, 4]), torch.Size([2, 10])]
        """
        _check_rows(x, self.width, f"unflatten: {self!r}")
        views, offset = [], 0
        for factor in self.factors:
            views.append(factor.unflatten(x[:, offset : offset + factor.width]))
            offset += factor.width
        return views

    def flatten(self, value) -> torch.Tensor:
        """Inverse of ``unflatten``: one tensor per factor, in order, concatenated into (n, width) rows."""
        if isinstance(value, torch.Tensor) or not isinstance(value, (list, tuple)):
            raise TypeError(f"flatten: {self!r} takes a list of {len(self.factors)} tensors, one per factor, "
                            f"got {type(value).__name__}")
        if len(value) != len(self.factors):
            raise ValueError(f"flatten: {self!r} has {len(self.factors)} factors, got {len(value)} tensors")
        parts = [_flatten_factor(factor, part, f"flatten: factor {index} ({factor!r})")
                 for index, (factor, part) in enumerate(zip(self.factors, value))]
        rows = {part.shape[0] for part in parts}
        if len(rows) > 1:
            raise ValueError(f"flatten: {self!r}: the factors' tensors have different row counts {[p.shape[0] for p in parts]}")
        return torch.cat(parts, dim=1)

    def __repr__(self) -> str:
        return f"Product([{', '.join(repr(f) for f in self.factors)}])"


def _field_shape(owner: str, shape) -> tuple[int, ...]:
    """``shape`` as a tuple of positive integers, or a ValueError naming the factor and the bad entry."""
    if isinstance(shape, (int,)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise ValueError(f"{owner}: shape must be a tuple of positive integers, got {shape!r}")
    result = []
    for position, size in enumerate(shape):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{owner}: shape {tuple(shape)!r} has {size!r} at position {position}; "
                             "every size must be a positive integer")
        result.append(int(size))
    return tuple(result)


def _check_rows(x, width: int, where: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] != width:
        raise ValueError(f"{where}: expected rows of shape (n, {width}), got {tuple(x.shape)}")


def _flatten_factor(factor: Domain, value, where: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor of shape (n, {', '.join(map(str, factor.view_shape))}), "
                        f"got {type(value).__name__}")
    if value.dim() != 1 + len(factor.view_shape) or tuple(value.shape[1:]) != factor.view_shape:
        expected = "(n" + "".join(f", {size}" for size in factor.view_shape) + ")"
        raise ValueError(f"{where}: expected a tensor of shape {expected}, got {tuple(value.shape)}")
    return value.reshape(value.shape[0], factor.width)


def as_product(domain: Domain) -> Product:
    """Wrap a single factor in a Product (a Product is returned unchanged)."""
    if not isinstance(domain, Domain):
        raise TypeError(f"expected an omegabridge domain, got {type(domain).__name__}")
    return domain if isinstance(domain, Product) else Product([domain])
