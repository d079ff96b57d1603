"""The mathematics every layer shares: domains and their segment table, schedules and time grids,
the noise contract and the special functions. Nothing here imports from the rest of omegabridge.

Example:
    >>> from omegabridge.core import domains, schedules
    >>> domains.Interval(0.0, 1.0).width, float(schedules.Constant(2.0).beta(1.0))
    (1, 4.0)
"""
