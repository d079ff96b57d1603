"""The demos behind ``omegabridge demo``: ``tables`` (the fair and flat-digits tables), ``digits``
(8x8 images with the U-Net), ``segments`` (segmentation maps) and ``points`` (point clouds);
``common`` holds what they share (data loading, splits, baselines).

Example:
    >>> from omegabridge.demos import tables
    >>> tables.DemoConfig().seed
    0
"""
