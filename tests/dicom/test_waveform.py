"""Waveforms read into channels: the values pydicom computes, the device's statements, and
what cannot be read said rather than dropped."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pacs_app.dicom import waveform
from tests.dicom_factory import TESTDATA

ECG = TESTDATA / "non_image" / "waveform_ecg.dcm"
needs_ecg = pytest.mark.skipif(not ECG.exists(), reason=f"shared test data not found at {ECG}")


def _code(value: str, meaning: str, scheme: str = "UCUM") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _pressure(samples: np.ndarray, *, interpretation: str = "SS") -> Dataset:
    """A hemodynamic-like group: 2 channels in mmHg with sensitivity, correction, baseline."""
    group = Dataset()
    group.MultiplexGroupLabel = "PRESSURE"
    group.NumberOfWaveformChannels = samples.shape[1]
    group.NumberOfWaveformSamples = samples.shape[0]
    group.SamplingFrequency = 250
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = interpretation
    channels = []
    for n in range(samples.shape[1]):
        channel = Dataset()
        channel.ChannelLabel = f"P{n + 1}"
        channel.ChannelSensitivity = "0.5"
        channel.ChannelSensitivityCorrectionFactor = "2"
        channel.ChannelBaseline = "-10"
        channel.ChannelSensitivityUnitsSequence = Sequence([_code("mm[Hg]", "mmHg")])
        channels.append(channel)
    group.ChannelDefinitionSequence = Sequence(channels)
    group.WaveformData = samples.astype("<i2").tobytes()
    return group


def _dataset(*groups: Dataset) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.9.2.1"  # Hemodynamic Waveform Storage
    ds.WaveformSequence = Sequence(list(groups))
    return ds


@needs_ecg
def test_an_ecg_reads_as_pydicom_computes_it():
    ds = pydicom.dcmread(ECG)
    read = waveform.read(ds)
    assert read.document == "12-lead ECG Waveform Storage"
    assert read.acquired == "20130125105919"
    assert [g.label for g in read.groups] == ["RHYTHM", "MEDIAN BEAT"]
    rhythm = read.groups[0]
    assert (rhythm.sampling_frequency, rhythm.samples, rhythm.recorded_samples) == (
        1000,
        10000,
        10000,
    )
    assert [c.label for c in rhythm.channels][:3] == ["Lead I (Einthoven)", "Lead II", "Lead III"]
    assert {c.units for c in rhythm.channels} == {"uV"}
    for index, group in enumerate(read.groups):
        expected = ds.waveform_array(index)
        for number, channel in enumerate(group.channels):
            values = np.array(channel.samples) * channel.factor + channel.baseline
            assert np.array_equal(values, expected[:, number]), (group.label, channel.label)
    # the device's own statements and measurements, not its marks at sample positions
    assert read.annotations[:2] == ["RITMO SINUSALE", "ECG NORMALE"]
    assert "QT Interval: 368 ms" in read.annotations
    assert "QRS Axis: 52 deg" in read.annotations
    assert not any("Onset" in a for a in read.annotations)
    assert read.problems == []


def test_units_factor_and_baseline_of_another_kind_of_waveform():
    samples = np.array([[0, 100], [-50, 200], [30, -300]])
    read = waveform.read(_dataset(_pressure(samples)))
    (group,) = read.groups
    assert read.document == "Hemodynamic Waveform Storage"
    assert [c.label for c in group.channels] == ["P1", "P2"]
    assert [(c.units, c.units_meaning) for c in group.channels] == [("mm[Hg]", "mmHg")] * 2
    assert group.channels[1].samples == [100, 200, -300]
    channel = group.channels[1]
    assert [s * channel.factor + channel.baseline for s in channel.samples] == [90, 190, -310]


def test_a_group_that_cannot_be_read_is_said_and_the_others_shown():
    good = _pressure(np.zeros((4, 2)))
    short = _pressure(np.zeros((4, 2)))
    short.MultiplexGroupLabel = "SHORT"
    short.WaveformData = short.WaveformData[:6]
    mulaw = _pressure(np.zeros((4, 2)))
    mulaw.MultiplexGroupLabel = "SOUND"
    mulaw.WaveformBitsAllocated, mulaw.WaveformSampleInterpretation = 8, "MB"
    read = waveform.read(_dataset(short, good, mulaw))
    assert [g.label for g in read.groups] == ["PRESSURE"]
    assert read.problems == [
        "Waveform group 1 could not be read: its Waveform Data holds 6 bytes where 2 channel(s) "
        "of 4 samples need 16 (the file is cut short)",
        "SOUND: mu-law encoded samples are not shown (not supported).",
    ]
    with pytest.raises(ValueError, match=r"nothing that can be shown.*cut short"):
        waveform.read(_dataset(copy.deepcopy(short)))


def test_a_long_recording_is_cut_and_says_so(monkeypatch):
    monkeypatch.setattr(waveform, "MAX_SAMPLES", 500)
    read = waveform.read(_dataset(_pressure(np.arange(2000).reshape(1000, 2) % 300)))
    (group,) = read.groups
    assert (group.samples, group.recorded_samples, len(group.channels[0].samples)) == (
        500,
        1000,
        500,
    )
    assert group.channels[1].samples[:3] == [1, 3, 5]
    assert read.problems == [
        "PRESSURE: the first 2 s of 4 s are shown (download the file for the whole recording)."
    ]


def test_an_image_has_no_waveform():
    ds = pydicom.examples.ct
    assert not waveform.is_waveform(ds)
    with pytest.raises(ValueError, match="no waveform"):
        waveform.read(ds)


def test_channels_that_do_not_match_the_samples_are_refused():
    group = _pressure(np.zeros((4, 2)))
    group.NumberOfWaveformChannels = 3
    with pytest.raises(ValueError, match="defines 2 channel"):
        waveform.read(_dataset(group))
