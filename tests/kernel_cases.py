"""Inputs and comparisons shared by the kernel tests of every backend (CPU C++, Triton).

``DOMAINS``: every domain kind alone (including K = 4096 and narrow intervals) and a mixed
layout of all of them; ``states``: float32 states around a domain at several scales with far
outliers; ``assert_within`` and ``factor_rows_agree``: the comparisons against the float64
torch reference that the kernel tests state their tolerances in.
"""

from __future__ import annotations

import torch

import omegabridge as ob

F64 = torch.float64

DOMAINS = {
    "real": ob.Real(),
    "interval": ob.Interval(-1.0, 2.0),
    "narrow-interval": ob.Interval(3.0, 3.001),
    "halfline-low": ob.HalfLine(low=0.5),
    "halfline-high": ob.HalfLine(high=-0.5),
    "lattice17": ob.Lattice(0, 16),
    "lattice256": ob.Lattice(0, 255),
    "lattice4096": ob.Lattice(0, 4095),
    "lattice-quarter": ob.Lattice(-1.0, 1.0, step=0.25),
    "binary": ob.Binary(),
    "categorical2": ob.Categorical(2),
    "categorical7": ob.Categorical(7),
    "categorical200": ob.Categorical(200),
    "categorical1000": ob.Categorical(1000),
    "categorical4096": ob.Categorical(4096),
    "sphere2": ob.Sphere(2),
    "sphere3": ob.Sphere(3),
    "sphere5": ob.Sphere(5),
    "many-halflines": ob.Product([ob.HalfLine(low=0.0)] * 37),
    # Categorical groups of every width 2..8, each at two or three of the four positions in a Philox block of
    # four columns (the Triton kernels' small-group classes: kernels/plan.py).
    "small-groups": ob.Product([ob.Categorical(k) for k in (3, 8, 4, 5, 2, 6, 3, 7, 8, 4, 2, 5, 6, 7, 3, 2, 8, 3, 4, 7)]),
    "mixed": ob.Product(
        [
            ob.HalfLine(low=0.0), ob.Interval(0.0, 1.0), ob.HalfLine(low=0.0), ob.Interval(-1.0, 1.0), ob.HalfLine(high=2.0),
            *[ob.Categorical(k) for k in (9, 7, 16, 15, 6, 5, 2, 42, 2)],
            ob.Lattice(0, 255), ob.Lattice(0, 255), ob.Binary(), ob.Sphere(3), ob.Real(), ob.Lattice(-1.0, 1.0, step=0.25),
        ]
    ),
}


def states(domain, rows: int, generator) -> torch.Tensor:
    """float32 states: around the domain at several scales, with some far outliers."""
    width = domain.width
    scale = 10 ** (torch.rand(rows, 1, generator=generator) * 4 - 2)  # 0.01 .. 100
    z = torch.randn(rows, width, generator=generator) * scale
    z = z + domain.project(torch.randn(rows, width, generator=generator) * 50)
    outliers = torch.rand(rows, width, generator=generator) < 0.05
    return torch.where(outliers, torch.randn(rows, width, generator=generator) * 1e4, z).to(torch.float32)


def assert_within(actual, expected, bound, what):
    assert torch.isfinite(actual).all(), f"{what}: non-finite (unwritten?) output"
    error = (actual.to(F64) - expected).abs()
    ratio = error / bound
    worst = int(torch.argmax(ratio))
    assert bool((error <= bound).all()), (
        f"{what}: error {error.flatten()[worst]:.3g} > bound {bound.flatten()[worst]:.3g} at flat index {worst}"
    )


def factor_rows_agree(domain, actual, expected, sigma):
    """Per factor, the fraction of rows whose draw agrees (continuous: to 1e-3 (sigma + |x|))."""
    worst = {}
    offset = 0
    for factor in domain.factors if isinstance(domain, ob.Product) else [domain]:
        a = actual[:, offset : offset + factor.width].to(F64)
        e = expected[:, offset : offset + factor.width]
        offset += factor.width
        if isinstance(factor, (ob.Lattice, ob.Binary, ob.Categorical)):
            same = (a == e).all(1)
        else:
            same = ((a - e).abs() <= 1e-3 * (sigma + e.abs())).all(1)
        worst[repr(factor)] = float(same.to(F64).mean())
    return worst


def check_step(out, z, f, table, s: float, db: float, seed: int, step: int, row_offset: int, what: str) -> None:
    """A kernel's step against the float64 reference: the mean's bound carried through the update."""
    from omegabridge import reference

    z64 = z.to(F64)
    expected = reference.step(z64, None if f is None else f.to(F64), table, s, db, seed, step, row_offset=row_offset)
    m = reference.posterior_mean(z64, table, s)
    drift = 0.0 if f is None else (db * f.to(F64)).abs()
    bound = 2e-5 * (expected.abs() + z64.abs() + db / s * (m.abs() + s**0.5) + drift + db**0.5) + 1e-6
    assert_within(out, expected, bound, what)


def check_bridge_step(out, prediction, z, f, previous, table, s: float, fraction: float, weight: float, spread,
                      seed: int, step: int, row_offset: int, what: str) -> None:
    """A kernel's bridge-solver step against the float64 reference: x_hat = m + s f to the mean's bound
    (plus rounding of s f), and that bound carried through z + fraction (x_hat + w (x_hat - previous) - z) + spread xi."""
    from omegabridge import reference

    z64 = z.to(F64)
    previous64 = None if previous is None else previous.to(F64)
    expected, predicted = reference.bridge_step(z64, None if f is None else f.to(F64), previous64, table, s, fraction,
                                                weight, spread.to(F64), seed, step, row_offset)
    m = reference.posterior_mean(z64, table, s)
    scaled_drift = 0.0 if f is None else (s * f.to(F64)).abs()
    prediction_bound = 1e-5 * (m.abs() + s**0.5) + 2e-6 * (predicted.abs() + scaled_drift) + 1e-7
    assert_within(prediction, predicted, prediction_bound, f"{what}: x_hat")
    moved = predicted if previous64 is None else predicted + weight * (predicted - previous64)
    noise_term = (expected - (z64 + fraction * (moved - z64))).abs()  # spread |xi|, to the normals' 1e-5
    bound = (fraction * (1 + 2 * abs(weight)) * prediction_bound
             + 2e-5 * (expected.abs() + z64.abs() + fraction * (moved.abs() + z64.abs()) + noise_term) + 1e-6)
    assert_within(out, expected, bound, f"{what}: state")


def target_inputs(domain, rows: int, generator):
    """(x in the domain, per-row c, sigma_t, s in 1e-4 .. 1, seed) for a training-target test."""
    x = domain.project(torch.randn(rows, domain.width, generator=generator) * 20).to(torch.float32)
    c = torch.rand(rows, 1, generator=generator)
    sigma = torch.rand(rows, 1, generator=generator) * 2
    s = 10 ** (torch.rand(rows, 1, generator=generator) * 4 - 4)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return x, c, sigma, s, seed


def check_target(z_t, target, x, table, c, sigma, s, seed: int, step: int, row_offset: int, what: str,
                 z_t_relative: float = 1e-6, normal_error: float = 0.0) -> None:
    """A kernel's (z_t, target): z_t to float rounding (``z_t_relative``) plus sigma times the error its
    normals may have (``normal_error`` (1 + |eps|): the noise contract's 1e-5 for a GPU's approximate
    instructions, docs/noise.md; 0 where the normals are float rounding away), the target against the
    reference at the kernel's own z_t."""
    from omegabridge.core import noise
    from omegabridge import reference

    eps = noise.normals(seed, step, row_offset, x.shape[0], x.shape[1], noise.STREAM_TRAIN, dtype=F64)
    expected_z = c.to(F64) * x.to(F64) + sigma.to(F64) * eps
    bound = z_t_relative * (expected_z.abs() + 1.0) + sigma.to(F64) * normal_error * (1.0 + eps.abs())
    assert_within(z_t, expected_z, bound, f"z_t on {what}")
    m = reference.posterior_mean(z_t.to(F64), table, s.to(F64))
    expected_target = (x.to(F64) - m) / s.to(F64)
    bound = (1e-5 * (m.abs() + s.to(F64).sqrt()) + 1e-6 * x.to(F64).abs()) / s.to(F64)
    assert_within(target, expected_target, bound, f"target on {what}")
