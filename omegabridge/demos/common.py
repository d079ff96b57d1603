"""What the demos share: their optional dependencies, the two real data sets (fair, digits), seeded
splits, the independent-marginals baselines and the digits classifier that scores samples.

Both data sets ship inside installed packages (statsmodels, scikit-learn), so no demo downloads.

Example:
    >>> train, test = split(10, seed=0)
    >>> len(train), len(test)
    (8, 2)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from omegabridge.errors import MissingDependencyError

__all__ = [
    "INSTALL_HINT", "require_demo_dependencies", "load_fair", "load_digits", "split", "split_frame", "independent_baseline",
    "independent_pixels", "digit_classifier", "digit_scores", "plot_digits", "FieldDemoSampler",
    "TrainedField", "sample_field",
]

INSTALL_HINT = "pip install 'omegabridge[demo]'   (or: pip install statsmodels pandas scikit-learn pyarrow)"
DEPENDENCIES = ("pandas", "statsmodels", "sklearn")

#: fair: overrides of the inferred schema (everything else is inferred).


def require_demo_dependencies() -> None:
    """Raise ``MissingDependencyError`` with the install command when a demo dependency is missing."""
    missing = []
    for module in DEPENDENCIES:
        try:
            __import__(module)
        except ImportError:
            missing.append("scikit-learn" if module == "sklearn" else module)
    if missing:
        raise MissingDependencyError(
            f"the omegabridge demo needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed. Install the demo extra:\n    {INSTALL_HINT}"
        )


def load_fair():
    """statsmodels' ``fair`` table as a DataFrame (6366 rows x 9 columns)."""
    require_demo_dependencies()
    from statsmodels.api import datasets

    return datasets.fair.load_pandas().data.reset_index(drop=True)


def load_digits():
    """scikit-learn's digits: (pixels DataFrame of 64 int64 columns ``pixel_R_C`` in 0..16, labels array)."""
    require_demo_dependencies()
    from sklearn import datasets

    bunch = datasets.load_digits(as_frame=True)
    return bunch.data.astype("int64"), bunch.target.to_numpy()


def split(rows: int, seed: int, test_share: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train / test row indices.

    >>> train, test = split(10, seed=0)
    >>> len(train), len(test), sorted(np.concatenate([train, test]).tolist()) == list(range(10))
    (8, 2, True)
    """
    order = np.random.default_rng(seed).permutation(rows)
    cut = rows - max(1, int(round(test_share * rows)))
    return order[:cut], order[cut:]


def split_frame(frame, seed: int, test_share: float = 0.2):
    """``(train, test, train_rows, test_rows)``: ``frame`` split by ``split``, each part re-indexed from 0.

    >>> import pandas as pd
    >>> train, test, _, _ = split_frame(pd.DataFrame({"a": range(10)}), seed=0)
    >>> len(train), len(test), list(test.index)
    (8, 2, [0, 1])
    """
    train_rows, test_rows = split(len(frame), seed, test_share)
    return (frame.iloc[train_rows].reset_index(drop=True), frame.iloc[test_rows].reset_index(drop=True),
            train_rows, test_rows)


def independent_baseline(frame, rows: int, seed: int):
    """Each column drawn independently (with replacement) from its own empirical marginal."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: rng.choice(frame[c].to_numpy(), size=rows, replace=True) for c in frame.columns})


def digit_classifier(pixels, labels):
    """Logistic regression (on standardised pixels) fitted to real digits: the judge of sampled ones.

    ``pixels``: rows of 64 pixels, a DataFrame or an array (as are the images of ``digit_scores``).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(np.asarray(pixels, dtype=float), labels)


def digit_scores(classifier, pixels) -> dict:
    """Class histogram of ``classifier``'s labels for the images, its TV from uniform, and the mean top probability."""
    probabilities = classifier.predict_proba(np.asarray(pixels, dtype=float))
    histogram = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1]) / len(probabilities)
    return {
        "class_histogram": histogram.tolist(),
        "histogram_tv_from_uniform": float(0.5 * np.abs(histogram - 1.0 / len(histogram)).sum()),
        "mean_top_probability": float(probabilities.max(axis=1).mean()),
    }


def plot_digits(real, frames: dict, path: str, count: int = 48) -> str:
    """Grids of real (held-out) and sampled digits side by side (each a DataFrame or array of rows of 64 pixels)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    from omegabridge.files import save_figure

    panels = [("real (held out)", real)] + list(frames.items())
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for axis, (name, frame) in zip(axes, panels):
        images = np.asarray(frame, dtype=float)[:count].reshape(-1, 8, 8)
        columns = 8
        grid = np.full((-(-len(images) // columns) * 9, columns * 9), np.nan)
        for index, image in enumerate(images):
            r, c = divmod(index, columns)
            grid[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = image
        axis.imshow(grid, cmap="gray_r", vmin=0, vmax=16)
        axis.set_title(name)
        axis.axis("off")
    figure.suptitle("digits: 8x8 images with pixels on the lattice 0..16")
    figure.tight_layout()
    return save_figure(figure, path)


def independent_pixels(images, count: int, seed: int) -> np.ndarray:
    """``count`` images whose pixels are drawn independently, each from its own values in ``images``.

    (``independent_baseline`` over the flattened pixels.)

    >>> images = np.array([[[0, 1]], [[0, 3]]])
    >>> independent_pixels(images, 3, seed=0)[:, 0, 0].tolist()
    [0, 0, 0]
    """
    import pandas as pd


    images = np.asarray(images)
    columns = pd.DataFrame(images.reshape(len(images), -1))
    return independent_baseline(columns, count, seed).to_numpy().reshape((count,) + images.shape[1:])


@dataclass(frozen=True)
class FieldDemoSampler:
    """The sampler, training times and device of a field demo: Euler on grid t and a model trained at
    the grid times. Each demo overrides the sampler with the one measured on it (digits, segments
    and points: the bridge solver on the "domain" grid). ``device``: where the models train and
    sample (``"cuda"`` for the GPU recipe, the ``*_PAPER`` sizes); the scores are computed on the CPU."""

    solver: str = "euler"
    sampling_grid: str = "t"
    times: str = "grid"
    device: str = "cpu"


@dataclass
class TrainedField:
    """A field demo's trained model and what sampling and scoring it need: the domain, the
    schedule, the training and held-out sets (numpy, the demo's own layout), the losses and
    the training time in seconds. ``sample_field`` samples it with any solver, grid and step
    count (bench/few_step_demos.py does)."""

    domain: object
    schedule: object
    model: object
    train: np.ndarray
    test: np.ndarray
    losses: list
    seconds: float


def sample_field(trained: TrainedField, n: int, *, solver: str, steps: int, grid: str, seed: int,
                 progress: bool = False):
    """``n`` flat rows from ``trained.model`` by ``solver`` in ``steps`` steps on ``grid``, and the seconds it took.

    >>> import omegabridge as ob
    >>> domain = ob.Lattice(0, 3)
    >>> trained = TrainedField(domain, ob.schedules.Exp(3.0, 1.0), None, np.zeros((1, 1)), np.zeros((1, 1)), [], 0.0)
    >>> rows, seconds = sample_field(trained, 4, solver="euler", steps=5, grid="t", seed=0)
    >>> rows.shape, bool(domain.contains(rows).all())
    (torch.Size([4, 1]), True)
    """
    import torch

    import omegabridge as ob

    bridge = ob.Bridge(trained.domain, trained.schedule, steps=steps, grid=grid)
    device = "cpu" if trained.model is None else next(trained.model.parameters()).device  # where it was trained
    mark = time.perf_counter()
    with torch.no_grad():
        rows = bridge.sample(trained.model, n=n, seed=seed, batch_size=256, progress=progress, solver=solver,
                             device=device).cpu()
    return rows, time.perf_counter() - mark
