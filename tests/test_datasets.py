"""The procedural data sets of the field demos: seeded, in range, and the structure they promise."""

from __future__ import annotations

import numpy as np
import pytest

from omegabridge.fields import datasets


def test_scenes_are_seeded_in_range_and_sky_above_ground():
    maps = datasets.segmentation_scenes(200, size=32, seed=0)
    assert maps.shape == (200, 32, 32) and maps.dtype == np.int64
    assert np.array_equal(maps, datasets.segmentation_scenes(200, size=32, seed=0))
    assert not np.array_equal(maps, datasets.segmentation_scenes(200, size=32, seed=1))
    share = np.bincount(maps.ravel(), minlength=6) / maps.size
    assert share.shape == (6,) and (share > 0.005).all(), share  # every class occurs
    assert share[0] > 0.3 and share[1] > 0.3  # sky and ground are the backdrop
    top, bottom = maps[:, 0, :], maps[:, -1, :]
    assert np.isin(top, [0, 2, 3, 4]).mean() > 0.95  # the top row is sky (or the sun, a roof, a crown)
    assert np.isin(bottom, [1, 5]).all()  # the bottom row is ground or a pond


def test_shapes_are_seeded_on_the_grid_and_spheres_are_round():
    clouds, labels = datasets.point_shapes(60, points=256, grid=64, seed=0)
    assert clouds.shape == (60, 256, 3) and clouds.dtype == np.int64 and clouds.min() >= 0 and clouds.max() <= 63
    again, labels_again = datasets.point_shapes(60, points=256, grid=64, seed=0)
    assert np.array_equal(clouds, again) and np.array_equal(labels, labels_again)
    assert set(labels.tolist()) == {0, 1, 2}
    for cloud, label in zip(clouds, labels):
        radius = np.linalg.norm(cloud - cloud.mean(axis=0), axis=1)
        spread = radius.std() / radius.mean()
        if label == 2:
            assert spread < 0.1, spread  # a sphere's points sit at one distance from its centre (up to rounding)
        else:
            assert spread > 0.1, spread


@pytest.mark.parametrize("call, words", [
    (lambda: datasets.segmentation_scenes(0), "n must be an integer >= 1"),
    (lambda: datasets.segmentation_scenes(2, size=4), "size must be an integer >= 8"),
    (lambda: datasets.point_shapes(2, points=0), "points must be an integer >= 1"),
])
def test_bad_sizes_are_named(call, words):
    with pytest.raises(ValueError, match=words):
        call()
