"""Exceptions of the metrology domain.

::

    MetrologyError
    ├── UnitError              a unit is unknown or not convertible to the instrument's unit
    ├── CalibrationError       no calibration is valid at a time, or a record is inconsistent
    └── FleetError             a fleet description is invalid (with the path of the bad field)
"""


class MetrologyError(Exception):
    """Root of every error raised by :mod:`metrology`."""


class UnitError(MetrologyError):
    """A unit is unknown, or cannot be converted to the unit an instrument is registered in."""


class CalibrationError(MetrologyError):
    """No calibration record applies, or a record is inconsistent."""


class FleetError(MetrologyError):
    """A fleet description is invalid."""
