"""Whether a re-sent file is the stored instance: the data set compared, file meta aside, and a
lossless re-encoding compared attribute by attribute and by its decoded pixels."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    JPEG2000,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from pacs_app.dicom import sameness
from pacs_app.dicom.sameness import difference
from tests.dicom_factory import TESTDATA, make_ct


def _bytes(ds: pydicom.Dataset, **kwargs) -> io.BytesIO:
    out = io.BytesIO()
    ds.save_as(out, **kwargs)
    out.seek(0)
    return out


def _told(stored: Path | io.BytesIO, sent: io.BytesIO) -> str | None:
    if isinstance(stored, Path):
        with open(stored, "rb") as fp:
            return difference(fp, sent)
    return difference(stored, sent)


def test_the_same_data_set_under_other_file_meta_is_the_same(tmp_path):
    path = make_ct(tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    ds.file_meta.ImplementationClassUID = "1.2.3.4"
    ds.file_meta.SourceApplicationEntityTitle = "FORWARDER"
    moved = _bytes(ds, enforce_file_format=True)

    with open(path, "rb") as stored:
        assert difference(stored, moved) is None
        assert difference(stored, io.BytesIO(path.read_bytes())) is None


def test_other_values_and_sizes_differ_by_name(tmp_path):
    path = make_ct(tmp_path / "a.dcm")
    same_size = pydicom.dcmread(path)
    same_size.PatientID = same_size.PatientID[:-1] + "9"  # one byte changed
    longer = pydicom.dcmread(path)
    longer.PatientID = "A-MUCH-LONGER-ID"
    added = pydicom.dcmread(path)
    added.OperatorsName = "SMITH^J"
    removed = pydicom.dcmread(path)
    del removed.PatientID
    derived = pydicom.dcmread(path)  # in the same encoding, no note of a re-encoding
    derived.DerivationDescription = "Smoothed"
    pixel = pydicom.dcmread(path)
    pixel.PixelData = pixel.PixelData[:-1] + bytes([pixel.PixelData[-1] ^ 1])

    for other in (same_size, longer):
        told = _told(path, _bytes(other))
        assert told == "its PatientID (0010,0020) differs from the stored one's"
        assert "A-MUCH" not in told  # names, never values: the message reaches the audit
    assert _told(path, _bytes(added)) == (
        "it has OperatorsName (0008,1070), which the stored one has not"
    )
    assert (
        _told(path, _bytes(removed)) == "it lacks PatientID (0010,0020), which the stored one has"
    )
    assert _told(path, _bytes(pixel)) == "its pixel data differ from the stored one's"
    assert _told(path, _bytes(derived)) == (
        "it has DerivationDescription (0008,2111), which the stored one has not"
    )


def test_an_attribute_within_a_sequence_is_named_with_its_item(tmp_path):
    path = make_ct(tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    ds.ReferencedImageSequence = Sequence([item])
    ds.save_as(path, enforce_file_format=True)
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3.5"

    assert _told(path, _bytes(ds)) == (
        "its ReferencedImageSequence (0008,1140) item 1: ReferencedSOPInstanceUID (0008,1155) "
        "differs from the stored one's"
    )


@pytest.mark.parametrize(
    ("syntax", "name"),
    [
        (ImplicitVRLittleEndian, None),
        (ExplicitVRBigEndian, None),
        (RLELossless, "compress"),
        (JPEG2000Lossless, "compress"),
    ],
)
def test_a_lossless_reencoding_is_the_same_instance(tmp_path, syntax, name):
    path = make_ct(tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    if name == "compress":
        ds.compress(syntax, generate_instance_uid=False)
        recoded = _bytes(ds)
    else:
        ds.file_meta.TransferSyntaxUID = syntax
        big = syntax == ExplicitVRBigEndian
        recoded = io.BytesIO()
        ds.preamble = b"\0" * 128
        pydicom.dcmwrite(
            recoded,
            ds,
            implicit_vr=syntax == ImplicitVRLittleEndian,
            little_endian=not big,
            force_encoding=True,
        )
        recoded.seek(0)

    assert _told(path, recoded) is None
    # and the other way round: the re-encoded one stored, the original sent again
    assert difference(recoded, io.BytesIO(path.read_bytes())) is None


def test_a_reencoding_that_changes_data_or_loses_it_is_told(tmp_path):
    path = make_ct(tmp_path / "a.dcm", size=64)
    lossy = pydicom.dcmread(path)
    lossy.compress(JPEG2000, j2k_cr=[20], generate_instance_uid=False)
    renamed = pydicom.dcmread(path)
    renamed.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    renamed.PatientName = "OTHER^NAME"
    repainted = pydicom.dcmread(path)
    values = repainted.pixel_array.copy()
    values[5, 5] += 1
    repainted.PixelData = values.tobytes()
    repainted.compress(RLELossless, generate_instance_uid=False)

    assert _told(path, _bytes(lossy)) == (
        "it is encoded in another transfer syntax (JPEG 2000 Image Compression) than the "
        "stored one (Explicit VR Little Endian)"
    )
    assert _told(path, _bytes(renamed, enforce_file_format=True)) == (
        "its PatientName (0010,0010) differs from the stored one's; it is encoded in another "
        "transfer syntax (Implicit VR Little Endian) than the stored one (Explicit VR Little "
        "Endian)"
    )
    assert _told(path, _bytes(repainted)) == (
        "its pixel data differ from the stored one's; it is encoded in another transfer "
        "syntax (RLE Lossless) than the stored one (Explicit VR Little Endian)"
    )


def _rgb(planar: int, pixels: bytes) -> io.BytesIO:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 1, 2, 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = planar
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels
    return _bytes(ds, enforce_file_format=True)


def test_a_colour_images_sample_order_is_compared_with_its_pixels():
    # two pixels, red (10, 20, 30) and (40, 50, 60): interleaved, then plane by plane
    interleaved, by_plane = bytes([10, 20, 30, 40, 50, 60]), bytes([10, 40, 20, 50, 30, 60])

    assert difference(_rgb(0, interleaved), _rgb(1, by_plane)) is None
    # the same bytes read in another order are another image
    assert difference(_rgb(0, interleaved), _rgb(1, interleaved)) == (
        "its pixel data differ from the stored one's"
    )


def test_a_file_without_a_preamble_is_compared_whole_then_by_its_data(tmp_path):
    path = make_ct(tmp_path / "a.dcm")
    whole = path.read_bytes()
    headless = whole[132:]  # no preamble: the direct parser does not read its file meta
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[:-1] + bytes([ds.PixelData[-1] ^ 1])  # the last pixel's
    changed = _bytes(ds).getvalue()[132:]

    assert difference(io.BytesIO(headless), io.BytesIO(headless)) is None
    assert difference(io.BytesIO(whole), io.BytesIO(headless)) is None  # the same data set
    assert difference(io.BytesIO(headless), io.BytesIO(changed)) == (
        "its pixel data differ from the stored one's"
    )


def test_a_file_that_does_not_parse_is_not_the_same(tmp_path):
    path = make_ct(tmp_path / "a.dcm")
    cut = io.BytesIO(path.read_bytes()[:-1000])  # the pixel data cut short

    assert _told(path, cut) == "its pixel data or other attributes differ from the stored one's"


MR_SMALL = TESTDATA / "clinical" / "MR_small.dcm"
RECODED_MR = [
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_padded.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
]


@pytest.mark.skipif(not MR_SMALL.exists(), reason="the shared DICOM test data is not here")
@pytest.mark.parametrize("name", RECODED_MR)
def test_real_lossless_encodings_of_one_instance_are_the_same(name):
    """The shared test data's MR_small in seven other encodings (implicit VR, big endian,
    padded, RLE, JPEG-LS, JPEG 2000 lossless), as routers and archives write them."""
    with open(MR_SMALL, "rb") as stored, open(TESTDATA / "transfer_syntax" / name, "rb") as sent:
        assert difference(stored, sent) is None


@pytest.mark.skipif(not MR_SMALL.exists(), reason="the shared DICOM test data is not here")
def test_a_real_instance_recoded_with_another_patient_name_is_told():
    ds = pydicom.dcmread(TESTDATA / "transfer_syntax" / "MR_small_jpeg_ls_lossless.dcm")
    ds.PatientName = "SOMEONE^ELSE"  # under the same SOP Instance UID

    told = _told(MR_SMALL, _bytes(ds))

    assert told.startswith("its PatientName (0010,0010) differs from the stored one's")
    assert "JPEG-LS Lossless" in told and "SOMEONE" not in told
    assert np.array_equal(ds.pixel_array, pydicom.dcmread(MR_SMALL).pixel_array)


DCMTK = {tool: shutil.which(tool) for tool in ("dcmconv", "dcmcrle", "dcmcjpeg", "dcmcjpls")}


@pytest.mark.skipif(not all(DCMTK.values()), reason="DCMTK (apt-get install dcmtk) not found")
def test_dcmtks_lossless_reencodings_are_the_same_instance(tmp_path):
    """What DCMTK's converters write (as a DCMTK-based router does) without loss is the same
    instance; its JPEG lossless notes itself in DerivationDescription, a note of the
    re-encoding, not data."""
    path = make_ct(tmp_path / "a.dcm", size=64)

    def converted(tool: str, *options: str) -> io.BytesIO:
        out = tmp_path / f"{tool}{''.join(options)}.dcm"
        subprocess.run([DCMTK[tool], *options, str(path), str(out)], check=True)
        return io.BytesIO(out.read_bytes())

    for tool, options in (
        ("dcmconv", ["+ti"]),
        ("dcmconv", ["+tb"]),
        ("dcmcrle", []),
        ("dcmcjpeg", ["+e1"]),
        ("dcmcjpls", ["+el"]),
    ):
        assert _told(path, converted(tool, *options)) is None, (tool, options)


def test_files_too_large_to_parse_are_told_apart_by_their_bytes(tmp_path, monkeypatch):
    path = make_ct(tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    recoded = _bytes(ds, enforce_file_format=True)
    monkeypatch.setattr(sameness, "MAX_PARSED", path.stat().st_size - 1)

    # the same bytes still are the same; a re-encoding cannot be shown to be
    assert _told(path, io.BytesIO(path.read_bytes())) is None
    assert _told(path, recoded) == (
        "its pixel data or other attributes differ from the stored one's; it is encoded in "
        "another transfer syntax (Implicit VR Little Endian) than the stored one (Explicit VR "
        "Little Endian)"
    )


def test_a_greyscale_images_polarity_is_data(tmp_path):
    """MONOCHROME1 shows the same samples inverted: a re-encoding that says so is another
    image, though its decoded samples are the same."""
    path = make_ct(tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian

    assert _told(path, _bytes(ds, enforce_file_format=True)).startswith(
        "its PhotometricInterpretation (0028,0004) differs from the stored one's"
    )


GBR = TESTDATA / "malformed" / "GDCMJ2K_TextGBR.dcm"


@pytest.mark.skipif(not GBR.exists(), reason="the shared DICOM test data is not here")
def test_a_jpeg_2000_colour_image_decompressed_is_the_same_instance():
    """Lossless JPEG 2000 colour is YBR_RCT (its reversible colour transform), which decodes
    to the RGB samples a decompressed copy holds and names."""
    ds = pydicom.dcmread(GBR)
    assert ds.PhotometricInterpretation == "YBR_RCT"
    ds.decompress(generate_instance_uid=False)
    assert ds.PhotometricInterpretation == "RGB"

    assert _told(GBR, _bytes(ds)) is None


def _losslessly_compressed() -> list[Path]:
    """The shared test data's files in a lossless compressed syntax."""
    found = []
    for path in sorted(TESTDATA.glob("**/*.dcm")):
        try:
            syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        except Exception:  # the malformed cases that do not parse: not this test's
            continue
        if syntax.is_compressed and syntax in sameness.LOSSLESS:
            found.append(path)
    return found


@pytest.mark.skipif(not MR_SMALL.exists(), reason="the shared DICOM test data is not here")
@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's notes on the malformed ones
def test_every_losslessly_compressed_test_file_decompressed_is_the_same_instance():
    """A router that decompresses what it forwards: every such file of the shared test data
    that pydicom can decompress (JPEG 2000, JPEG lossless, JPEG-LS, RLE; colour, greyscale,
    multi-frame) is the same instance as its decompressed copy."""
    compared = []
    for path in _losslessly_compressed():
        ds = pydicom.dcmread(path)
        if "PixelData" not in ds:
            continue
        try:
            ds.decompress(generate_instance_uid=False)
        except (ValueError, RuntimeError, NotImplementedError):
            continue  # a codec pydicom lacks here (the viewer's decoding has its own tests)
        assert _told(path, _bytes(ds)) is None, path.name
        compared.append(path.name)
    assert len(compared) >= 12, compared
