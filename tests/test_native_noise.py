"""The C++ extension (omegabridge._native_ext) against the torch reference omegabridge.core.noise.

Words and uniforms must agree bit for bit, normals up to float rounding (docs/noise.md).
Skipped when the extension is not built, unless OMEGABRIDGE_REQUIRE_NATIVE=1 (then failing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from omegabridge.ops import native as _native
from omegabridge.core import noise

sys.path.insert(0, str(Path(__file__).resolve().parent))  # native_helpers, also under --import-mode=importlib
from native_helpers import require_extension  # noqa: E402

ext = require_extension()

SENTINEL = -7  # never a uint32 word
SEEDS = [0, 1, 0xDEADBEEF, 2**32 + 5, 2**63 + 12345, 2**64 - 1]
STEPS = [0, 1, 999, 2**32 - 1]
ROW_OFFSETS = [0, 3, 2**32 - 2, 2**32 + 7, 2**48 - 64]
STREAMS = [0, 1, 0x8000]
WIDTHS = [1, 3, 5, 17]


def native_words(seed, step, row_offset, rows, width, stream):
    out = torch.full((rows, width), SENTINEL, dtype=torch.int64)
    ext.philox_words(out.data_ptr(), rows, width, seed, step, row_offset, stream)
    return out


def native_uniforms(seed, step, row_offset, rows, width, stream):
    out = torch.full((rows, width), float("nan"), dtype=torch.float32)
    ext.uniforms(out.data_ptr(), rows, width, seed, step, row_offset, stream)
    return out


def native_normals(seed, step, row_offset, rows, width, stream):
    out = torch.full((rows, width), float("nan"), dtype=torch.float32)
    ext.normals(out.data_ptr(), rows, width, seed, step, row_offset, stream)
    return out


def cases():
    """A spread of (seed, step, row_offset, width, stream) covering every value of each list."""
    out = []
    index = 0
    for seed in SEEDS:
        for stream in STREAMS:
            for width in WIDTHS:
                step = STEPS[index % len(STEPS)]
                row_offset = ROW_OFFSETS[index % len(ROW_OFFSETS)]
                out.append((seed, step, row_offset, width, stream))
                index += 1
    return out


CASES = cases()
ROWS = 7


def test_abi():
    assert ext.abi == _native.ABI == 2
    assert _native.is_available()
    assert _native.unavailable_reason() == ""


@pytest.mark.parametrize("seed, step, row_offset, width, stream", CASES)
def test_words_bit_exact(seed, step, row_offset, width, stream):
    got = native_words(seed, step, row_offset, ROWS, width, stream)
    want = noise.random_words(seed, step, row_offset, ROWS, width, stream)
    assert got.dtype == want.dtype == torch.int64
    assert (got >= 0).all() and (got < 2**32).all()
    assert torch.equal(got, want)


@pytest.mark.parametrize("seed, step, row_offset, width, stream", CASES)
def test_uniforms_bit_exact(seed, step, row_offset, width, stream):
    got = native_uniforms(seed, step, row_offset, ROWS, width, stream)
    want = noise.uniforms(seed, step, row_offset, ROWS, width, stream)
    assert not got.isnan().any()
    assert (got > 0).all() and (got <= 1).all()
    assert torch.equal(got, want)


@pytest.mark.parametrize("seed, step, row_offset, width, stream", CASES)
def test_normals_close(seed, step, row_offset, width, stream):
    got = native_normals(seed, step, row_offset, ROWS, width, stream)
    want = noise.normals(seed, step, row_offset, ROWS, width, stream)
    assert not got.isnan().any()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_normals_many_values():
    # Enough values to reach the tails, where log and the angle are most sensitive.
    rows, width = 512, 33
    got = native_normals(2**63 + 1, 5, 2**32 - 100, rows, width, 0x8000)
    want = noise.normals(2**63 + 1, 5, 2**32 - 100, rows, width, 0x8000)
    assert not got.isnan().any()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_full_word_range_bit_exact():
    # A block big enough to hit words with the top bit set and the uniforms near 0 and 1.
    rows, width = 300, 64
    got = native_words(2**64 - 1, 2**32 - 1, 2**40, rows, width, 0xFFFF)
    want = noise.random_words(2**64 - 1, 2**32 - 1, 2**40, rows, width, 0xFFFF)
    assert torch.equal(got, want)
    assert (want >= 2**31).any()
    assert torch.equal(
        native_uniforms(2**64 - 1, 2**32 - 1, 2**40, rows, width, 0xFFFF),
        noise.uniforms(2**64 - 1, 2**32 - 1, 2**40, rows, width, 0xFFFF),
    )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("row_offset", [0, 2**32 - 3])
def test_chunking_does_not_change_words(width, row_offset):
    seed, step, stream, rows, split = 2**63 + 77, 12, 1, 9, 4
    whole = native_words(seed, step, row_offset, rows, width, stream)
    first = native_words(seed, step, row_offset, split, width, stream)
    second = native_words(seed, step, row_offset + split, rows - split, width, stream)
    assert torch.equal(torch.cat([first, second]), whole)
    normals_whole = native_normals(seed, step, row_offset, rows, width, stream)
    normals_split = torch.cat(
        [
            native_normals(seed, step, row_offset, split, width, stream),
            native_normals(seed, step, row_offset + split, rows - split, width, stream),
        ]
    )
    assert torch.equal(normals_split, normals_whole)


def test_writes_stay_inside_the_block():
    # Fill the middle rows of a larger buffer; the rows around it must keep their sentinel.
    rows, width = 5, 6
    buffer = torch.full((rows + 2, width), SENTINEL, dtype=torch.int64)
    middle = buffer[1 : rows + 1]
    ext.philox_words(middle.data_ptr(), rows, width, 3, 4, 10, 0)
    assert (buffer[0] == SENTINEL).all() and (buffer[-1] == SENTINEL).all()
    assert torch.equal(middle, noise.random_words(3, 4, 10, rows, width, 0))

    floats = torch.full((rows + 2, width), float("nan"))
    ext.normals(floats[1 : rows + 1].data_ptr(), rows, width, 3, 4, 10, 0)
    assert floats[0].isnan().all() and floats[-1].isnan().all()
    assert not floats[1 : rows + 1].isnan().any()


def test_empty_sizes_write_nothing():
    out = torch.full((2, 2), SENTINEL, dtype=torch.int64)
    ext.philox_words(out.data_ptr(), 0, 2, 1, 0, 0, 0)
    ext.philox_words(out.data_ptr(), 2, 0, 1, 0, 0, 0)
    assert (out == SENTINEL).all()
    ext.uniforms(0, 0, 0, 1, 0, 0, 0)  # nothing to write, so a null pointer is fine


@pytest.mark.parametrize("fn", ["philox_words", "uniforms", "normals"])
def test_negative_sizes_raise(fn):
    out = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError):
        getattr(ext, fn)(out.data_ptr(), -1, 2, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        getattr(ext, fn)(out.data_ptr(), 2, -1, 0, 0, 0, 0)


def test_address_out_of_range_raises():
    out = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError):
        ext.philox_words(out.data_ptr(), 1, 1, 0, 2**32, 0, 0)  # step
    with pytest.raises(ValueError):
        ext.philox_words(out.data_ptr(), 1, 1, 0, 0, 0, 2**16)  # stream
    with pytest.raises(ValueError):
        ext.philox_words(out.data_ptr(), 2, 1, 0, 0, 2**48 - 1, 0)  # rows past 2^48
    with pytest.raises(TypeError):
        ext.philox_words(out.data_ptr(), 1, 1, 2**64, 0, 0, 0)  # seed beyond uint64
    with pytest.raises(TypeError):
        ext.philox_words(out.data_ptr(), 1, 1, -1, 0, 0, 0)


def test_gil_released_threads_agree():
    # The GIL is released while a call runs; concurrent calls must give the same values.
    from concurrent.futures import ThreadPoolExecutor

    rows, width = 2000, 31
    want = noise.random_words(9, 2, 2**33, rows, width, 2)

    def run(_):
        return native_words(9, 2, 2**33, rows, width, 2)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(4)))
    for got in results:
        assert torch.equal(got, want)
