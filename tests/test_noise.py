"""The Philox4x32-10 noise contract of docs/noise.md, in the torch reference."""

from __future__ import annotations

import math

import pytest
import torch

from omegabridge.core import noise

# Known-answer vectors of Random123 (kat_vectors, philox4x32_10): (counter, key, output).
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0), (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", KNOWN_ANSWERS)
def test_philox_known_answers(counter, key, expected):
    out = noise.philox4x32_10(tuple(torch.tensor(c) for c in counter), key)
    assert tuple(int(v) for v in out) == expected


def test_counter_layout_matches_the_contract():
    seed, step, stream, row = 2**40 + 12345, 77, 5, 2**33 + 9
    words = noise.random_words(seed, step, row, 1, 10, stream)
    for column in range(10):
        counter = (column // 4, row & 0xFFFFFFFF, (row >> 32) | (stream << 16), step)
        block = noise.philox4x32_10(tuple(torch.tensor(c) for c in counter), (seed & 0xFFFFFFFF, seed >> 32))
        assert int(words[0, column]) == int(block[column % 4])


def test_values_depend_only_on_their_address():
    whole = noise.normals(7, 3, 100, 50, 13)
    first = noise.normals(7, 3, 100, 20, 13)
    rest = noise.normals(7, 3, 120, 30, 13)
    assert torch.equal(torch.cat([first, rest]), whole)
    # a wider layout has the same values in its first columns (odd width: the pair partner is virtual)
    assert torch.equal(noise.normals(7, 3, 100, 50, 20)[:, :13], whole)
    assert not torch.equal(noise.normals(8, 3, 100, 50, 13), whole)
    assert not torch.equal(noise.normals(7, 4, 100, 50, 13), whole)
    assert not torch.equal(noise.normals(7, 3, 100, 50, 13, stream=noise.STREAM_TRAIN), whole)


def test_uniforms_are_exact_multiples_of_two_to_minus_24_in_the_half_open_unit_interval():
    u = noise.uniforms(0, 0, 0, 4000, 25)
    assert u.min() > 0 and u.max() <= 1
    assert torch.equal(u * 2**24, torch.round(u * 2**24))
    assert torch.equal(u, noise.uniforms(0, 0, 0, 4000, 25, dtype=torch.float64).float())
    assert abs(float(u.mean()) - 0.5) < 0.005


def test_normals_moments_and_independence():
    xi = noise.normals(3, 1, 0, 20000, 8, dtype=torch.float64)
    assert abs(float(xi.mean())) < 0.01
    assert abs(float(xi.var()) - 1) < 0.02
    correlation = torch.corrcoef(xi.T)
    off_diagonal = correlation - torch.eye(8, dtype=torch.float64)
    assert off_diagonal.abs().max() < 0.03  # includes the Box-Muller partners (0, 1), (2, 3), ...
    # kurtosis 3 and tails like a Gaussian
    assert abs(float((xi**4).mean()) - 3) < 0.15
    assert abs(float((xi.abs() > 3).double().mean()) - 2 * 0.5 * math.erfc(3 / math.sqrt(2))) < 0.001


def test_address_validation():
    with pytest.raises(ValueError, match="seed"):
        noise.random_words(-1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="stream"):
        noise.random_words(0, 0, 0, 1, 1, stream=2**16)
    with pytest.raises(ValueError, match="step"):
        noise.random_words(0, 2**32, 0, 1, 1)
    with pytest.raises(ValueError, match="rows"):
        noise.random_words(0, 0, 2**48, 1, 1)
