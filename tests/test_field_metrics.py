"""Field metrics against hand-computed values and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from omegabridge import datasets, field_metrics as fm


def test_class_frequency_and_cooccurrence_by_hand():
    a = np.array([[[0, 0], [1, 1]]])  # pairs: (0,0) (1,1) horizontally, (0,1) (0,1) vertically
    b = np.array([[[0, 1], [0, 1]]])  # pairs: (0,1) (0,1) horizontally, (0,0) (1,1) vertically
    c = np.array([[[0, 1], [1, 0]]])  # every neighbour pair is (0,1)
    assert fm.class_frequency_tv(a, b, 2) == 0.0
    assert fm.cooccurrence_tv(a, b, 2) == 0.0
    # a: {00: 1/4, 11: 1/4, 01: 1/2}; c: {01: 1} -> TV = 1/2
    assert fm.cooccurrence_tv(a, c, 2) == pytest.approx(0.5)
    assert fm.class_frequency_tv(a, np.array([[[1, 1], [1, 1]]]), 2) == pytest.approx(0.5)


def test_component_counts_by_hand():
    maps = np.array([
        [[0, 0, 1], [0, 1, 1], [2, 2, 2]],  # three regions
        [[0, 1, 0], [1, 0, 1], [0, 1, 0]],  # a checkerboard: nine regions (4-connectivity)
    ])
    assert fm.component_counts(maps).tolist() == [3, 9]
    assert fm.component_count_tv(maps[:1], maps[1:]) == 1.0
    assert fm.component_count_tv(maps, maps) == 0.0


def brute_chamfer(x, y):
    d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=2)
    return d.min(axis=1).mean() + d.min(axis=0).mean()


def test_chamfer_matches_brute_force_and_one_nn_separates():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 20, 3)), rng.normal(size=(3, 15, 3))
    matrix = fm.pairwise_chamfer(a, b)
    expected = np.array([[brute_chamfer(x, y) for y in b] for x in a])
    np.testing.assert_allclose(matrix, expected, rtol=1e-4)
    assert fm.minimum_matching_distance(b, a) == pytest.approx(expected.min(axis=1).mean(), rel=1e-4)
    far = rng.normal(size=(20, 20, 3)) + 10.0
    near = rng.normal(size=(20, 20, 3))
    assert fm.one_nearest_neighbour_accuracy(far, near) == 1.0
    same = datasets.point_shapes(60, points=64, seed=1)[0]
    accuracy = fm.one_nearest_neighbour_accuracy(same[:30], same[30:])
    assert 0.2 <= accuracy <= 0.8, accuracy  # one law: near chance


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 2))
    b = rng.normal(size=(20000, 2)) * 2.0 + np.array([1.0, 0.0])
    # |mu|^2 + tr(I + 4I - 2 * 2I) = 1 + 2
    assert fm.frechet_distance(a, b) == pytest.approx(3.0, abs=0.1)
    assert fm.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_bad_maps_are_named():
    with pytest.raises(ValueError, match=r"a must be integer maps of shape \(n, H, W\)"):
        fm.class_frequency_tv(np.zeros((2, 3)), np.zeros((1, 2, 3), dtype=int), 2)
