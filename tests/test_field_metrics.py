"""Field metrics against hand-computed values and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from omegabridge.fields import datasets, metrics as fm


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
    # By size (three regions of 3 pixels; nine single pixels): at most 1, 2 and 3 pixels.
    assert [fm.component_counts(maps, largest=k).tolist() for k in (1, 2, 3)] == [[0, 9], [0, 9], [3, 9]]
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


def test_grid_chamfer_is_the_brute_force_chamfer_of_integer_clouds():
    rng = np.random.default_rng(2)
    a, b = rng.integers(-3, 12, (5, 17, 3)), rng.integers(0, 20, (4, 9, 3))
    expected = np.array([[brute_chamfer(x, y) for y in b] for x in a])
    np.testing.assert_array_equal(fm.grid_chamfer(a, b), expected)
    np.testing.assert_array_equal(fm.grid_chamfer(a.astype(np.float32), b), expected)  # integer-valued floats
    itself = fm.grid_chamfer(a)
    np.testing.assert_array_equal(itself, np.array([[brute_chamfer(x, y) for y in a] for x in a]))
    planar = rng.integers(0, 30, (3, 11, 2))
    np.testing.assert_array_equal(fm.grid_chamfer(planar), np.array([[brute_chamfer(x, y) for y in planar] for x in planar]))
    with pytest.raises(ValueError, match="integer coordinates"):
        fm.grid_chamfer(a + 0.5, b)
    with pytest.raises(ValueError, match="use pairwise_chamfer"):
        fm.grid_chamfer(np.array([[[0, 0, 0]], [[10**6, 10**6, 10**6]]]))


def test_one_nn_accuracy_from_a_distance_matrix_and_with_another_chamfer():
    # Samples 0, 1 are each other's nearest; reference 2 is nearest to sample 1: 3 of 4 right.
    distances = np.array([[0, 1, 9, 9], [1, 0, 2, 9], [9, 2, 0, 5], [9, 9, 5, 0]])
    assert fm.nearest_neighbour_accuracy_of(distances, samples=2) == 0.75
    clouds = datasets.point_shapes(24, points=32, seed=3)[0]
    assert fm.one_nearest_neighbour_accuracy(clouds[:12], clouds[12:], chamfer=fm.grid_chamfer) == \
        fm.one_nearest_neighbour_accuracy(clouds[:12], clouds[12:])
    assert fm.minimum_matching_distance(clouds[:12], clouds[12:], chamfer=fm.grid_chamfer) == \
        pytest.approx(fm.minimum_matching_distance(clouds[:12], clouds[12:]), rel=1e-6)


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
