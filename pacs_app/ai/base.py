"""What every analysis step and plugin exchanges: plain data, no database, no web framework.

The pipeline loads each selected series once into a :class:`SeriesVolume` (modality LUT
applied, MONOCHROME1 inverted, geometry read), hands a :class:`StudyContext` to every
applicable :class:`Plugin`, and collects :class:`Finding` objects. A finding always says how it
was measured (``method``), what it cannot tell (``limitations``) and where its evidence is.

This module must not import torch or MONAI (the web process imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np


class Severity(StrEnum):
    INFO = "info"  # a measurement or a passed check
    WARNING = "warning"  # a quality problem the reader should know about
    ABNORMAL = "abnormal"  # a possible clinical abnormality, for the radiologist to judge


@dataclass
class SeriesVolume:
    """One image series, loaded once for every plugin.

    ``pixels``: float32 ``(frames, rows, columns)`` for greyscale, in modality units (HU for CT)
    and with MONOCHROME1 already inverted, so a higher value is always brighter; or uint8
    ``(frames, rows, columns, 3)`` for colour. Frames are in spatial order where positions are
    known (else in instance-number order). ``frame_sources[i]`` says which instance (SOP UID)
    and which frame of it frame ``i`` came from.
    """

    series_uid: str
    modality: str
    body_part: str
    description: str
    pixels: np.ndarray
    # (between slices, between rows, between columns) in mm; None where the header lacks it
    spacing: tuple[float | None, float | None, float | None]
    positions: list[tuple[float, float, float] | None]  # ImagePositionPatient per frame
    orientations: list[tuple[float, ...] | None]  # ImageOrientationPatient per frame
    instance_numbers: list[int | None]  # per frame
    frame_sources: list[tuple[str, int]]  # (SOPInstanceUID, frame index in that instance)
    headers: list[dict[str, Any]]  # DICOM JSON of each instance (bulk data left out)
    photometric: str
    slice_thickness: float | None
    # The range the stored values can take, in modality units (from BitsStored, signedness
    # and the rescale): a pixel at either end may be clipped.
    value_range: tuple[float, float]
    transfer_syntaxes: list[str]
    warnings: list[str] = field(default_factory=list)  # what loading noticed (e.g. skipped frames)

    @property
    def is_color(self) -> bool:
        return self.pixels.ndim == 4

    @property
    def frames(self) -> int:
        return int(self.pixels.shape[0])


@dataclass(frozen=True)
class SeriesInfo:
    """A series that was not loaded (no pixel data, e.g. SR, RTSTRUCT, KO), for the record."""

    series_uid: str
    modality: str
    description: str
    instances: int


@dataclass
class StudyContext:
    """Everything a plugin may look at for one study."""

    study_id: str
    # What the order (the upload form, else the header) says the study is.
    modality: str
    body_part: str
    description: str
    series: list[SeriesVolume]
    skipped_series: list[SeriesInfo] = field(default_factory=list)
    # Store an evidence file (e.g. an overlay PNG) and get the key the finding should cite.
    save_evidence: Callable[[str, bytes, str], str] | None = None  # (name, data, media type)
    device: str = "cpu"


@dataclass
class Finding:
    code: str  # stable identifier, e.g. "ct.hu_air_calibration"
    title: str  # one line a radiologist reads
    severity: Severity
    method: str  # how it was measured
    limitations: str  # what it cannot tell
    value: float | None = None
    unit: str = ""
    value_text: str = ""  # the value in words where a number is not enough
    series_uid: str | None = None
    # e.g. {"key_image": {"sop_instance_uid": ..., "frame": 0}, "overlay": "<storage key>"}
    evidence: dict[str, Any] = field(default_factory=dict)
    # Sentence for the draft report's Findings section ("" to leave it out of the draft).
    report_text: str = ""


@dataclass
class PluginResult:
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the plugin could not do all it meant to


@runtime_checkable
class Plugin(Protocol):
    name: str
    version: str
    kind: str  # "qc", "measurement", "segmentation" or "learned"
    description: str

    def applies(self, context: StudyContext) -> bool:
        """Whether the plugin has something to say about this study."""
        ...

    def run(self, context: StudyContext) -> PluginResult:
        """Analyse; raise only for a bug (the pipeline records it as the plugin's failure)."""
        ...
