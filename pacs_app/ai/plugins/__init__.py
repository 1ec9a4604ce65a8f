"""The default analysis plugins: classical, weight-free, plain numpy/scipy/Pillow.

Each finding says how it was measured and what it cannot tell. No plugin here imports torch,
MONAI or a web framework.
"""

from __future__ import annotations

from pacs_app.ai.base import Plugin
from pacs_app.ai.plugins.ct_measure import CTMeasurements
from pacs_app.ai.plugins.cxr_lungs import ChestRadiographLungFields, LungFields, segment_lung_fields
from pacs_app.ai.plugins.header_qc import HeaderQC
from pacs_app.ai.plugins.image_qc import ImageQC
from pacs_app.ai.plugins.series_qc import SeriesQC

DEFAULT_PLUGINS: tuple[Plugin, ...] = (
    HeaderQC(),
    SeriesQC(),
    ImageQC(),
    CTMeasurements(),
    ChestRadiographLungFields(),
)


def default_plugins() -> tuple[Plugin, ...]:
    """One instance of each default plugin, in the order they run."""
    return DEFAULT_PLUGINS


__all__ = [
    "DEFAULT_PLUGINS",
    "CTMeasurements",
    "ChestRadiographLungFields",
    "HeaderQC",
    "ImageQC",
    "LungFields",
    "SeriesQC",
    "default_plugins",
    "segment_lung_fields",
]
