"""The benchmark layouts named in the issues, shared by bench/run.py and the pytest-benchmark cases."""

from __future__ import annotations

import omegabridge as ob

# Adult-like: 5 continuous columns and 9 categorical columns (109 dims), as in the paper's tabular runs.
ADULT_CATEGORIES = (9, 7, 16, 15, 6, 5, 2, 42, 2)


def adult_like() -> ob.Product:
    """5 half-line/interval columns plus categorical columns of 9, 7, 16, 15, 6, 5, 2, 42 and 2 classes."""
    continuous = [ob.HalfLine(low=0.0), ob.Interval(0.0, 1.0), ob.HalfLine(low=0.0), ob.Interval(-1.0, 1.0), ob.HalfLine(low=0.0)]
    return ob.Product(continuous + [ob.Categorical(k) for k in ADULT_CATEGORIES])


def layouts(scale: float = 1.0) -> dict[str, tuple[ob.Domain, int]]:
    """name -> (domain, rows); ``scale`` shrinks the row counts for quick runs."""
    rows = lambda n: max(1, int(n * scale))  # noqa: E731
    return {
        "half-line 16M": (ob.Product([ob.HalfLine(low=0.0)] * 16), rows(1 << 20)),
        "unconstrained 16M (noise + update only)": (ob.Product([ob.Real()] * 16), rows(1 << 20)),
        "categorical K=8": (ob.Product([ob.Categorical(8)] * 2), rows(1 << 20)),
        "lattice K=17": (ob.Product([ob.Lattice(0, 16)] * 16), rows(1 << 16)),
        "lattice K=256": (ob.Product([ob.Lattice(0, 255)] * 16), rows(1 << 13)),
        "adult-like 30k": (adult_like(), rows(30000)),
    }
