"""Fields (images, segmentation maps, point clouds): the synthetic data sets the demos and tests use
(``datasets``) and the metrics that score samples of them (``metrics``).

Example:
    >>> from omegabridge.fields import datasets
    >>> datasets.segmentation_scenes(2, size=16).shape
    (2, 16, 16)
"""
