"""Synthetic DICOM files built from pydicom's bundled examples, with fresh UIDs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom.examples
from pydicom.uid import generate_uid

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "dicom"


def make_ct(
    path: Path,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    patient_name: str = "TEST^PATIENT",
    patient_id: str = "PID-001",
    instance_number: int = 1,
    size: int | None = None,
    rows: int | None = None,
) -> Path:
    """A CT slice (128x128 from pydicom's CT_small, or ``size``x``size`` 16-bit; only its
    first ``rows`` rows, where given: an image that is not square)."""
    ds = pydicom.examples.ct
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.InstanceNumber = instance_number
    if size:
        ds.Rows = ds.Columns = size
        pixels = (np.arange(size * size, dtype=np.uint32) % 4096).astype(np.int16)
        ds.PixelData = pixels.reshape(size, size).tobytes()
    if rows:
        ds.PixelData, ds.Rows = ds.pixel_array[:rows].tobytes(), rows
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def make_series(folder: Path, count: int, **kwargs) -> list[Path]:
    """``count`` slices of one new series (same study unless ``study_uid`` differs)."""
    study_uid = kwargs.pop("study_uid", None) or generate_uid()
    series_uid = kwargs.pop("series_uid", None) or generate_uid()
    return [
        make_ct(
            folder / f"slice_{i:03d}.dcm",
            study_uid=study_uid,
            series_uid=series_uid,
            instance_number=i + 1,
            **kwargs,
        )
        for i in range(count)
    ]


def add_overlay(
    ds: pydicom.Dataset,
    bits: np.ndarray,
    *,
    group: int = 0x6000,
    origin: tuple[int, int] = (1, 1),
    first_frame: int | None = None,
    label: str = "",
) -> pydicom.Dataset:
    """Give ``ds`` an overlay plane (60xx): ``bits`` is (rows, columns), or (frames, rows,
    columns) for a multi-frame overlay starting at image frame ``first_frame`` (1-based)."""
    tag = group << 16
    rows, columns = bits.shape[-2:]
    ds.add_new(tag | 0x0010, "US", rows)
    ds.add_new(tag | 0x0011, "US", columns)
    ds.add_new(tag | 0x0040, "CS", "G")
    ds.add_new(tag | 0x0050, "SS", list(origin))
    ds.add_new(tag | 0x0100, "US", 1)
    ds.add_new(tag | 0x0102, "US", 0)
    if label:
        ds.add_new(tag | 0x1500, "LO", label)
    if bits.ndim == 3:
        ds.add_new(tag | 0x0015, "IS", bits.shape[0])
        ds.add_new(tag | 0x0051, "US", first_frame or 1)
    packed = np.packbits(bits.astype(bool).ravel(), bitorder="little").tobytes()
    ds.add_new(tag | 0x3000, "OW", packed + b"\0" * (len(packed) % 2))
    return ds


def make_overlaid_ct(path: Path, bits: np.ndarray, **kwargs) -> Path:
    """:func:`make_ct`'s 128x128 slice with an overlay plane (:func:`add_overlay`)."""
    make_ct(path)
    ds = pydicom.dcmread(path)
    add_overlay(ds, bits, **kwargs)
    ds.save_as(path, enforce_file_format=True)
    return path


def make_multiframe(path: Path, frames: int = 3, size: int = 16) -> pydicom.Dataset:
    """An 8-bit greyscale multi-frame secondary capture (not saved: the caller adds to it)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.2"  # Multi-frame Grayscale Byte SC
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality = "TEST^FRAMES", "PID-MF", "OT"
    ds.Rows = ds.Columns = size
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = (np.arange(frames * size * size) % 100).astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    return ds


def make_single_bit(path: Path, frames: int = 3, rows: int = 29, columns: int = 37) -> np.ndarray:
    """A single-bit multi-frame secondary capture saved at ``path``, whose frames (29 x 37
    bits by default) start inside a byte from the second on; its bits as (frames, rows,
    columns), one byte each."""
    from pydicom.pixels import pack_bits

    ds = make_multiframe(path, frames=frames)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.1"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 1, 0
    bits = np.random.default_rng(7).integers(0, 2, (frames, rows, columns), dtype=np.uint8)
    bits[:, 0, :] = 1  # each frame's first row set: a frame cut at the wrong bit shows
    ds.PixelData = pack_bits(bits)
    ds.save_as(path, enforce_file_format=True)
    return bits


def example(name: str) -> pydicom.Dataset:
    """A shared test file (its path under ``TESTDATA``), or one of pydicom's examples
    (``pydicom:...``): its palette colour image, or its RGB image stored plane by plane
    (Planar Configuration 1)."""
    if name == "pydicom:palette":
        return pydicom.examples.palette_color
    if name == "pydicom:planes":
        ds = pydicom.examples.rgb_color
        ds.PixelData = np.ascontiguousarray(ds.pixel_array.transpose(2, 0, 1)).tobytes()
        ds.PlanarConfiguration = 1
        return ds
    return pydicom.dcmread(TESTDATA / name)


def restamped(name: str, folder: Path, patient_id: str, patient_name: str) -> Path:
    """A copy of :func:`example` ``name`` as a new study of its own patient."""
    ds = example(name)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID, ds.PatientName = patient_id, patient_name
    path = folder / f"{patient_id}.dcm"
    ds.save_as(path)
    return path


def make_cr(
    path: Path,
    *,
    photometric: str = "MONOCHROME2",
    study_uid: str | None = None,
    series_uid: str | None = None,
    instance_number: int = 1,
) -> pydicom.Dataset:
    """A 12-bit unsigned radiograph (CR) of 128 x 128 without rescale or window, saved at
    ``path`` (its stored values pydicom's CT_small's plus 1024); add LUTs with
    :func:`with_lut` and save it again."""
    ds = pydicom.examples.ct
    values = np.clip(ds.pixel_array.astype(np.int32) + 1024, 0, 4095).astype(np.uint16)
    ds.Modality, ds.PhotometricInterpretation = "CR", photometric
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelData = values.tobytes()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientName, ds.PatientID, ds.InstanceNumber = "LUT^TEST", "LUT-01", instance_number
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return ds


def with_lut(
    ds: pydicom.Dataset,
    keyword: str,
    entries,
    *,
    first: int = 0,
    bits: int = 16,
    vr: str = "OW",
    explanation: str = "",
) -> pydicom.Dataset:
    """``ds`` with a LUT of ``entries`` as its ModalityLUTSequence or VOILUTSequence
    (``keyword``): LUT Data as 16-bit words (``vr`` OW, little endian), as numbers (US) or
    one byte an entry (``"OB8"``: 8-bit entries packed two to a word, written as OW)."""
    item = pydicom.Dataset()
    entries = [int(v) for v in entries]
    item.add_new(0x00283002, "US" if first >= 0 else "SS", [len(entries) % 65536, first, bits])
    if explanation:
        item.LUTExplanation = explanation
    if vr == "US":
        item.add_new(0x00283006, "US", entries)
    elif vr == "OB8":
        data = bytes(entries) + (b"\0" if len(entries) % 2 else b"")
        item.add_new(0x00283006, "OW", data)
    else:
        item.add_new(0x00283006, "OW", np.asarray(entries, "<u2").tobytes())
    setattr(ds, keyword, [item])
    if keyword == "ModalityLUTSequence":
        for name in ("RescaleSlope", "RescaleIntercept"):
            if name in ds:
                delattr(ds, name)
    return ds


def make_float_map(
    path: Path, *, double: bool = False, instance_number: int = 1, scale: float = 1.0
) -> np.ndarray:
    """A parametric map of 64 x 48 float values (Float Pixel Data, 32 bits; Double Float Pixel
    Data, 64 bits, with ``double``), negative and fractional ones among them (about -4 to 6,
    times ``scale``), saved at ``path``: its values. As the Floating Point Image Pixel module
    has it, there is no Bits Stored, High Bit or Pixel Representation."""
    ds = pydicom.examples.ct
    del ds.PixelData
    for keyword in (
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "RescaleSlope",
        "RescaleIntercept",
        "WindowCenter",
        "WindowWidth",
        "SmallestImagePixelValue",
        "LargestImagePixelValue",
    ):
        if keyword in ds:
            delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.30"
    ds.Modality, ds.Rows, ds.Columns = "MR", 48, 64
    y, x = np.mgrid[0:48, 0:64]
    values = ((np.sin(x / 7.0) * 3.25 + y / 16.0 - 0.5) * scale).astype(
        np.float64 if double else np.float32
    )
    ds.BitsAllocated = 64 if double else 32
    if double:
        ds.DoubleFloatPixelData = values.astype("<f8").tobytes()
    else:
        ds.FloatPixelData = values.astype("<f4").tobytes()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientName, ds.PatientID, ds.InstanceNumber = "FLOAT^MAP", "FLT-01", instance_number
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return values


def make_bits_above_stored(path: Path, *, signed: bool = False) -> np.ndarray:
    """A 12-bit radiograph (:func:`make_cr`, 16 bits allocated) whose words carry other bits
    above Bits Stored, saved at ``path``: bit 12 set in a rectangle (where images of before
    2004 kept an overlay plane) and bit 15 in every seventh pixel. With ``signed``, its values
    are signed (about -900 to 1200), written in 12 bits without sign extension. Its values,
    as the standard reads them (PS3.5 8.1.1: only the bits up to High Bit are the value's)."""
    ds = make_cr(path)
    values = ds.pixel_array.astype(np.int32) - (2048 if signed else 0)
    words = (values & 0x0FFF).astype(np.uint16)
    words[10:40, 20:60] |= 0x1000
    words.reshape(-1)[::7] |= 0x8000
    ds.PixelRepresentation = int(signed)
    ds.PixelData = words.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return values
