"""Noise schedules sigma(t)^2 = g(t) with beta(t) = int_0^t g, and the time grids built on them.

All schedules have beta(0) = 0 and T = 1 (bridge-math.md section 1).

Example:
    >>> import omegabridge as ob
    >>> grid = ob.schedules.Exp(a=3.0, b=1.0).grid(steps=4, kind="t")
    >>> grid.t.tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = ["Schedule", "Constant", "Exp", "Linear", "InverseExp", "Table", "TimeGrid", "GRIDS", "grid_power"]


def _positive(owner: str, field: str, value, allow_zero: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {field} must be a real number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}: {field} must be finite and {bound}, got {value!r}")
    return number


#: Most steps a grid may have: far beyond any useful sampler (the paper uses 2000), and a grid's
#: tensors stay small; a larger count is a typo, not a request to allocate for minutes.
MAX_STEPS = 1_000_000


@dataclass(frozen=True)
class TimeGrid:
    """A run's precomputed grid, float64 on the host.

    ``t`` and ``beta`` have N + 1 entries (t_0 = 0 .. t_N = 1); ``remaining``
    (s_k = beta(T) - beta(t_k)) and ``increment`` (db_k) have N entries.
    """

    t: torch.Tensor
    beta: torch.Tensor
    remaining: torch.Tensor
    increment: torch.Tensor

    @property
    def steps(self) -> int:
        return self.increment.numel()

    @property
    def beta_end(self) -> float:
        return float(self.beta[-1])


class Schedule:
    """Base class: subclasses define ``beta(t)`` and ``g(t)`` for t in [0, 1] (float64 tensors)."""

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def beta_inverse(self, beta: torch.Tensor) -> torch.Tensor:
        """t with beta(t) = beta, by bisection (subclasses with a closed form override it)."""
        beta = torch.as_tensor(beta, dtype=torch.float64)
        low = torch.zeros_like(beta)
        high = torch.ones_like(beta)
        for _ in range(64):
            middle = 0.5 * (low + high)
            below = self.beta(middle) < beta
            low = torch.where(below, middle, low)
            high = torch.where(below, high, middle)
        return 0.5 * (low + high)

    def grid(self, steps: int, kind: str = "t") -> TimeGrid:
        """The time grid of ``steps`` steps.

        ``kind``: ``"t"`` (uniform in t), ``"beta"`` (uniform in beta), or ``"s"`` / ``"s^RHO"``
        (the remaining variance s_k = s_0 (1 - k/N)^RHO, RHO = 2 for ``"s"``): steps that
        shrink with s, so the last s is s_0 / N^RHO rather than about s_0 / N. The exact
        last step draws with spread s_{N-1}, so a few-step sampler needs it small
        against the domain's finest spacing (measured in bench/solvers.py).

        >>> grid = Exp(3.0, 1.0).grid(4, "s")
        >>> [round(v / float(grid.remaining[0]), 4) for v in grid.remaining.tolist()]
        [1.0, 0.5625, 0.25, 0.0625]
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= MAX_STEPS:
            raise ValueError(f"steps must be an integer in [2, {MAX_STEPS}], got {steps!r}")
        uniform = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        rho = grid_power(kind)
        if rho is not None and steps ** -rho < 1e-14:  # 1 - (1 - k/N)^rho would round to 1 in float64
            raise ValueError(f"grid {kind!r} with {steps} steps: the last s would be {steps ** -rho:.2g} of the first, "
                             "below what float64 resolves (1e-14); use fewer steps or a smaller power")
        if kind == "t":
            t = uniform
        else:
            beta_end = float(self.beta(torch.tensor(1.0, dtype=torch.float64)))
            fraction = uniform if rho is None else 1.0 - (1.0 - uniform) ** rho
            t = self.beta_inverse(fraction * beta_end)
            t[0], t[-1] = 0.0, 1.0
        return _grid_from_beta(t, self.beta(t))


#: The grid names ``Schedule.grid`` takes (``"s^RHO"`` with any RHO in [1, 8] besides ``"s"``).
GRIDS = ("t", "beta", "s")


def grid_power(kind: str) -> float | None:
    """RHO of an ``"s"`` / ``"s^RHO"`` grid name, None for ``"t"`` and ``"beta"``; ``ValueError`` otherwise.

    >>> grid_power("s"), grid_power("s^3"), grid_power("beta")
    (2.0, 3.0, None)
    """
    if kind in ("t", "beta"):
        return None
    if kind == "s":
        return 2.0
    if isinstance(kind, str) and kind.startswith("s^"):
        try:
            rho = float(kind[2:])
        except ValueError:
            rho = math.nan
        if 1.0 <= rho <= 8.0:
            return rho
        raise ValueError(f"grid {kind!r}: the power after 's^' must be a number in [1, 8]")
    raise ValueError(f"grid must be 't', 'beta', 's' or 's^RHO' (RHO in [1, 8]), got {kind!r}")


def _grid_from_beta(t: torch.Tensor, beta: torch.Tensor) -> TimeGrid:
    beta = beta.clone()
    beta[0] = 0.0
    increment = beta[1:] - beta[:-1]
    if not bool((increment > 0).all()):
        bad = int(torch.nonzero(increment <= 0)[0])
        raise ValueError(f"schedule: beta must increase strictly; it does not between grid points {bad} and {bad + 1}")
    # s_k as a suffix sum of increments, so s_{N-1} == db_{N-1} exactly.
    remaining = torch.flip(torch.cumsum(torch.flip(increment, [0]), 0), [0])
    return TimeGrid(t=t, beta=beta, remaining=remaining, increment=increment)


class Constant(Schedule):
    """g(t) = sigma^2, beta(t) = sigma^2 t.

    >>> float(Constant(2.0).beta(torch.tensor(1.0, dtype=torch.float64)))
    4.0
    """

    def __init__(self, sigma: float = 1.0):
        self.sigma = _positive("Constant", "sigma", sigma)

    def beta(self, t):
        return self.sigma**2 * torch.as_tensor(t, dtype=torch.float64)

    def g(self, t):
        return torch.full_like(torch.as_tensor(t, dtype=torch.float64), self.sigma**2)

    def beta_inverse(self, beta):
        return torch.as_tensor(beta, dtype=torch.float64) / self.sigma**2

    def __repr__(self):
        return f"Constant(sigma={self.sigma})"


class Exp(Schedule):
    """g(t) = a b e^{-a t}, beta(t) = b (1 - e^{-a t}); the paper's tabular default is a = 3, b = 1.

    >>> round(float(Exp(3.0, 1.0).beta(torch.tensor(1.0, dtype=torch.float64))), 4)
    0.9502
    """

    def __init__(self, a: float = 3.0, b: float = 1.0):
        self.a = _positive("Exp", "a", a)
        self.b = _positive("Exp", "b", b)

    def beta(self, t):
        return -self.b * torch.expm1(-self.a * torch.as_tensor(t, dtype=torch.float64))

    def g(self, t):
        return self.a * self.b * torch.exp(-self.a * torch.as_tensor(t, dtype=torch.float64))

    def beta_inverse(self, beta):
        return -torch.log1p(-torch.as_tensor(beta, dtype=torch.float64) / self.b) / self.a

    def __repr__(self):
        return f"Exp(a={self.a}, b={self.b})"


def for_reach(reach: float) -> "Exp":
    """The default schedule of a domain whose farthest point from the start z0 = 0 is ``reach`` away.

    ``Exp(a=3, b=max(1, reach)^2)``: beta(T) = 0.95 max(1, reach)^2, so the base process spreads
    as far as the farthest point of the domain, and the bridge's own law at T (f = 0:
    N(0, beta(T) I) restricted to the domain) is within a factor exp(-1/1.9) = 0.59 of flat
    over it. Unit-scale domains keep the paper's Exp(3, 1); a 0..255 pixel lattice gets b = 255^2.

    >>> for_reach(255.0)
    Exp(a=3.0, b=65025.0)
    >>> for_reach(0.5)
    Exp(a=3.0, b=1.0)
    """
    reach = float(reach)
    if not math.isfinite(reach) or reach < 0:
        raise ValueError(f"reach must be finite and >= 0, got {reach!r}")
    return Exp(3.0, max(1.0, reach) ** 2)


class Linear(Schedule):
    """g(t) = b (1 - t) + c, beta(t) = b (2 - t) t / 2 + c t.

    >>> float(Linear(1.0, 1.0).beta(torch.tensor(1.0, dtype=torch.float64)))
    1.5
    """

    def __init__(self, b: float = 1.0, c: float = 0.1):
        self.b = _positive("Linear", "b", b, allow_zero=True)
        self.c = _positive("Linear", "c", c, allow_zero=True)
        if self.b + self.c <= 0:
            raise ValueError("Linear: b + c must be > 0")

    def beta(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        return self.b * (2.0 - t) * t / 2.0 + self.c * t

    def g(self, t):
        return self.b * (1.0 - torch.as_tensor(t, dtype=torch.float64)) + self.c

    def beta_inverse(self, beta):
        beta = torch.as_tensor(beta, dtype=torch.float64)
        slope = self.b + self.c
        # Root of (b/2) t^2 - (b + c) t + beta = 0 in the cancellation-free form.
        discriminant = torch.clamp(slope * slope - 2.0 * self.b * beta, min=0.0)
        return 2.0 * beta / (slope + torch.sqrt(discriminant))

    def __repr__(self):
        return f"Linear(b={self.b}, c={self.c})"


class InverseExp(Schedule):
    """g(t) = a b (1 - e^{-a (1 - t)}) + c, beta(t) = a b t - b e^{-a (1 - t)} + b e^{-a} + c t.

    >>> InverseExp(3.0, 1.0, 0.1).g(torch.tensor(1.0, dtype=torch.float64)).item()
    0.1
    """

    def __init__(self, a: float = 3.0, b: float = 1.0, c: float = 0.01):
        self.a = _positive("InverseExp", "a", a)
        self.b = _positive("InverseExp", "b", b)
        self.c = _positive("InverseExp", "c", c, allow_zero=True)

    def beta(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        a, b, c = self.a, self.b, self.c
        # -b (e^{-a(1-t)} - e^{-a}) = -b e^{-a} expm1(a t), without cancellation for small t
        return a * b * t - b * math.exp(-a) * torch.expm1(a * t) + c * t

    def g(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        return -self.a * self.b * torch.expm1(-self.a * (1.0 - t)) + self.c

    def __repr__(self):
        return f"InverseExp(a={self.a}, b={self.b}, c={self.c})"


class Table(Schedule):
    """beta given at the N + 1 points t_k = k / N of its own grid (beta[0] = 0, strictly increasing).

    Between grid points beta is linear (so g is piecewise constant).

    >>> Table([0.0, 0.5, 2.0]).grid(steps=2).increment.tolist()
    [0.5, 1.5]
    """

    def __init__(self, beta: Sequence[float] | torch.Tensor):
        values = torch.as_tensor(beta, dtype=torch.float64).flatten()
        if values.numel() < 3:
            raise ValueError(f"Table: beta needs at least 3 entries (2 steps), got {values.numel()}")
        if not bool(torch.isfinite(values).all()):
            raise ValueError("Table: beta must be finite")
        if float(values[0]) != 0.0:
            raise ValueError(f"Table: beta[0] must be 0, got {float(values[0])}")
        steps = values[1:] - values[:-1]
        if not bool((steps > 0).all()):
            bad = int(torch.nonzero(steps <= 0)[0])
            raise ValueError(f"Table: beta must increase strictly; beta[{bad + 1}] <= beta[{bad}]")
        self.values = values
        self.steps = values.numel() - 1

    def _position(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        scaled = torch.clamp(t, 0.0, 1.0) * self.steps
        index = torch.clamp(torch.floor(scaled).long(), max=self.steps - 1)
        return index, scaled - index

    def beta(self, t):
        index, fraction = self._position(t)
        return self.values[index] + fraction * (self.values[index + 1] - self.values[index])

    def g(self, t):
        index, _ = self._position(t)
        return (self.values[index + 1] - self.values[index]) * self.steps

    def grid(self, steps: int | None = None, kind: str = "t") -> TimeGrid:
        if kind != "t":
            raise ValueError("grid: a Table schedule defines its own grid (t_k = k / N); use grid='t'")
        if steps is not None and steps != self.steps:
            raise ValueError(f"steps: a Table with {self.steps + 1} beta values has {self.steps} steps, got steps={steps}")
        t = torch.linspace(0.0, 1.0, self.steps + 1, dtype=torch.float64)
        return _grid_from_beta(t, self.values.clone())

    def __repr__(self):
        return f"Table(<{self.steps + 1} values>)"
