"""Waveforms (PS3.3 C.10.9, Waveform Module): ECGs, hemodynamic, respiratory and other
multiplexed signals, read into channels of samples that a viewer can draw.

Each multiplex group (an ECG's rhythm strip, its median beat) becomes a list of channels, each
with its label (the channel source's code meaning: "Lead II"), its units (UCUM: ``uV``,
``mm[Hg]``) and its samples as stored, with the two numbers that turn a stored sample into a
value in those units (PS3.3 C.10.9.1.4: sample * sensitivity * correction factor + baseline).
The samples stay the integers the file holds, so nothing is lost or rounded on the way.

Reading is lenient, as for structured reports: a group that cannot be read is left out and
its problem said in :attr:`Waveform.problems`; only a file with no readable group is refused.
The measurements and statements the device put in the Waveform Annotation Sequence that stand
on their own (a rhythm statement, "QT Interval 368 ms") are listed; annotations that mark a
sample position are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pydicom
from pydicom.waveforms.numpy_handler import WAVEFORM_DTYPES

#: Samples kept per channel: two minutes at 1 kHz. Longer recordings (a Holter's day) are cut
#: there, and the cut is said in the problems.
MAX_SAMPLES = 120_000
_COMPANDED = {"MB": "mu-law", "AB": "A-law"}


@dataclass
class Channel:
    label: str
    units: str  # UCUM code of Channel Sensitivity Units, "" where the file gives none
    units_meaning: str
    factor: float  # sensitivity * correction factor
    baseline: float
    samples: list[int]


@dataclass
class MultiplexGroup:
    label: str
    sampling_frequency: float  # Hz
    samples: int  # per channel, as shown (see MAX_SAMPLES)
    recorded_samples: int  # per channel, as recorded
    channels: list[Channel] = field(default_factory=list)


@dataclass
class Waveform:
    document: str  # the SOP class's name: "12-lead ECG Waveform Storage"
    acquired: str  # Acquisition DateTime, as recorded ("" where absent)
    groups: list[MultiplexGroup] = field(default_factory=list)
    annotations: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def is_waveform(ds: pydicom.Dataset) -> bool:
    return "WaveformSequence" in ds


def read(ds: pydicom.Dataset) -> Waveform:
    """The waveform groups of ``ds``. Raises ``ValueError`` (its message says why) where the
    dataset has none, or none that can be read."""
    if not is_waveform(ds):
        raise ValueError("This instance has no waveform (no Waveform Sequence).")
    sop_class = str(ds.get("SOPClassUID", ""))
    document = pydicom.uid.UID(sop_class).name if sop_class else "Waveform"
    out = Waveform(document=document, acquired=str(ds.get("AcquisitionDateTime", "")))
    little_endian = ds.original_encoding[1] is not False  # None: built in memory
    for index, item in enumerate(ds.WaveformSequence):
        try:
            group = _group(item, index, little_endian, out.problems)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            out.problems.append(f"Waveform group {index + 1} could not be read: {exc}")
            continue
        if group is not None:
            out.groups.append(group)
    if not out.groups:
        reasons = " ".join(out.problems) or "The Waveform Sequence is empty."
        raise ValueError(f"This waveform has nothing that can be shown. {reasons}")
    out.annotations = _annotations(ds)
    return out


def _group(
    item: pydicom.Dataset, index: int, little_endian: bool, problems: list[str]
) -> MultiplexGroup | None:
    label = str(item.get("MultiplexGroupLabel", "") or f"Group {index + 1}")
    bits = int(item.WaveformBitsAllocated)
    interpretation = str(item.WaveformSampleInterpretation)
    if interpretation in _COMPANDED:
        problems.append(
            f"{label}: {_COMPANDED[interpretation]} encoded samples are not shown (not supported)."
        )
        return None
    dtype = WAVEFORM_DTYPES.get((bits, interpretation))
    if dtype is None:
        raise ValueError(f"{bits}-bit samples of interpretation {interpretation!r} are not defined")
    n_channels = int(item.NumberOfWaveformChannels)
    n_samples = int(item.NumberOfWaveformSamples)
    frequency = float(item.SamplingFrequency)
    if n_channels < 1 or n_samples < 1 or frequency <= 0:
        raise ValueError(
            f"{n_channels} channel(s) of {n_samples} sample(s) at {frequency} Hz is not a waveform"
        )
    definitions = list(item.get("ChannelDefinitionSequence", []))
    if len(definitions) != n_channels:
        raise ValueError(
            f"it defines {len(definitions)} channel(s) for {n_channels} in its samples"
        )
    data = item.WaveformData
    expected = n_channels * n_samples * (bits // 8)
    if len(data) < expected:
        raise ValueError(
            f"its Waveform Data holds {len(data)} bytes where {n_channels} channel(s) of "
            f"{n_samples} samples need {expected} (the file is cut short)"
        )
    shown = min(n_samples, MAX_SAMPLES)
    if shown < n_samples:
        problems.append(
            f"{label}: the first {shown / frequency:.0f} s of {n_samples / frequency:.0f} s are "
            "shown (download the file for the whole recording)."
        )
    # samples are interleaved: channel 1 sample 1, channel 2 sample 1, ...
    order = "<" if little_endian else ">"
    raw = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder(order), count=n_channels * shown)
    raw = raw.reshape(shown, n_channels)
    group = MultiplexGroup(label, frequency, shown, n_samples)
    for number, definition in enumerate(definitions):
        units = (definition.get("ChannelSensitivityUnitsSequence") or [pydicom.Dataset()])[0]
        group.channels.append(
            Channel(
                label=_channel_label(definition, number),
                units=str(units.get("CodeValue", "")),
                units_meaning=str(units.get("CodeMeaning", "")),
                factor=float(definition.get("ChannelSensitivity", 1.0) or 1.0)
                * float(definition.get("ChannelSensitivityCorrectionFactor", 1.0) or 1.0),
                baseline=float(definition.get("ChannelBaseline", 0.0) or 0.0),
                samples=raw[:, number].tolist(),
            )
        )
    return group


def _channel_label(definition: pydicom.Dataset, number: int) -> str:
    source = definition.get("ChannelSourceSequence") or []
    meaning = str(source[0].get("CodeMeaning", "")) if source else ""
    return meaning or str(definition.get("ChannelLabel", "")) or f"Channel {number + 1}"


def _annotations(ds: pydicom.Dataset) -> list[str]:
    out = []
    for item in ds.get("WaveformAnnotationSequence", []):
        if "ReferencedSamplePositions" in item or "ReferencedTimeOffsets" in item:
            continue  # a mark at a point of the trace, not a statement
        text = str(item.get("UnformattedTextValue", "")).strip()
        concept = item.get("ConceptNameCodeSequence") or []
        name = str(concept[0].get("CodeMeaning", "")) if concept else ""
        if "NumericValue" in item:
            units = item.get("MeasurementUnitsCodeSequence") or []
            unit = str(units[0].get("CodeValue", "")) if units else ""
            value = " ".join(format(float(v), "g") for v in np.atleast_1d(item.NumericValue))
            text = f"{value} {unit}".strip()
        elif "ConceptCodeSequence" in item and not text:
            text = str(item.ConceptCodeSequence[0].get("CodeMeaning", ""))
        if name and text:
            out.append(f"{name}: {text}")
        elif text or name:
            out.append(text or name)
    return out
