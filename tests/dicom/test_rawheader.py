"""The direct header parser gives the pydicom path's JSON, and takes the common files itself."""

from __future__ import annotations

import contextlib
import io
import warnings

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from pacs_app.dicom import rawheader, reader
from pacs_app.dicom.dicomjson import dataset_to_json
from tests.dicom_factory import TESTDATA, make_ct

FILES = sorted(p for p in TESTDATA.rglob("*") if p.is_file()) if TESTDATA.exists() else []
needs_data = pytest.mark.skipif(not FILES, reason=f"shared test data not found at {TESTDATA}")

# Plain files of the kinds a PACS mostly receives: these must not fall back to pydicom.
COMMON = [
    "clinical/CT_small.dcm",
    "clinical/MR_small.dcm",
    "clinical/CR_chest_RG1_J2KI.dcm",
    "clinical/CT_enhanced_multiframe_2f.dcm",
    "clinical/MR_enhanced_multiframe_10f.dcm",
    "clinical/US_multiframe_30f_jpeg.dcm",
    "clinical/NM_wholebody_JPGExtended.dcm",
    "clinical/DX_thorax_highdicom.dcm",
    "non_image/SR_TID1500_highdicom.dcm",
]


def _direct(path):
    with path.open("rb") as fp:
        return rawheader.parse(fp, path.stat().st_size)


def _via_pydicom(path):
    with warnings.catch_warnings(), path.open("rb") as fp:
        warnings.simplefilter("ignore")
        return reader._read_with_pydicom(fp, path.stat().st_size, path.name)


@needs_data
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(TESTDATA).as_posix())
def test_same_header_as_the_pydicom_path(path):
    try:
        direct = _direct(path)
    except rawheader.Unsupported:
        assert path.relative_to(TESTDATA).as_posix() not in COMMON
        return  # read_header reads it with pydicom
    dicom_json, syntax, has_preamble, _ = _via_pydicom(path)
    assert direct.dicom_json == dicom_json
    assert direct.transfer_syntax_uid == syntax
    assert has_preamble


@needs_data
@pytest.mark.parametrize("name", COMMON)
def test_common_files_take_the_direct_path(name):
    direct = _direct(TESTDATA / name)
    assert direct.dicom_json["0020000D"]["vr"] == "UI"


@needs_data
@pytest.mark.parametrize(
    "name",
    [
        "transfer_syntax/MR_small_bigendian.dcm",  # big endian
        "transfer_syntax/image_dfl.dcm",  # deflated
        "charset/chrJapMulti.dcm",  # ISO 2022 character sets
        "malformed/no_meta.dcm",  # no preamble
        "malformed/rtplan_truncated.dcm",  # an element past the end
        "malformed/UN_sequence.dcm",
    ],
)
def test_unusual_files_are_left_to_pydicom(name):
    with pytest.raises(rawheader.Unsupported):
        _direct(TESTDATA / name)


@needs_data
def test_truncated_pixel_data_is_found_on_the_direct_path():
    path = TESTDATA / "malformed/MR_truncated.dcm"
    _direct(path)  # the header itself is whole
    with pytest.raises(reader.InvalidDicom, match="the file is truncated"):
        reader.read_header(path)


def _save(ds: Dataset, path, syntax=ExplicitVRLittleEndian):
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def _base() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Doe^Jane"
    return ds


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_nested_sequences_of_both_lengths(tmp_path, syntax):
    ds = _base()
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator, inner.CodeMeaning = "T-D3000", "SRT", "Chest"
    outer = Dataset()
    outer.AnatomicRegionSequence = Sequence([inner, inner])
    outer.ReferencedSOPInstanceUID = generate_uid()
    ds.ReferencedImageSequence = Sequence([outer])
    ds.ProcedureCodeSequence = Sequence([])
    ds.WindowCenter, ds.WindowWidth = ["40", "400"], ["400", "1500"]
    ds.PixelRepresentation = 1
    ds.SmallestImagePixelValue = -1000  # "US or SS": signed because of PixelRepresentation
    path = _save(ds, tmp_path / "nested.dcm", syntax)
    # pydicom writes undefined-length sequences and items when asked to
    raw = pydicom.dcmread(path)
    for elem in (raw["ReferencedImageSequence"], raw["ProcedureCodeSequence"]):
        elem.is_undefined_length = True
    raw.save_as(tmp_path / "undefined.dcm")
    for p in (path, tmp_path / "undefined.dcm"):
        direct = _direct(p)
        assert direct.dicom_json == _via_pydicom(p)[0]
        assert direct.implicit == (syntax == ImplicitVRLittleEndian)
    assert direct.dicom_json["00280106"] == {"vr": "SS", "Value": [-1000]}


def test_a_sequence_item_inherits_the_character_set(tmp_path):
    ds = _base()
    ds.SpecificCharacterSet = "ISO_IR 192"
    item = Dataset()
    item.StudyDescription = "Tórax, 胸部"
    ds.ReferencedStudySequence = Sequence([item])
    direct = _direct(_save(ds, tmp_path / "utf8.dcm"))
    assert direct.dicom_json["00081110"]["Value"][0]["00081030"]["Value"] == ["Tórax, 胸部"]


def test_a_synthetic_ct_reads_the_same_either_way(tmp_path):
    path = make_ct(tmp_path / "ct.dcm", patient_name="Ünïcode^Näme", size=64)
    direct = _direct(path)
    assert direct.dicom_json == _via_pydicom(path)[0]
    assert direct.pixel_data_at is not None
    header = reader.read_header(path)
    assert header.patient_name == "Ünïcode^Näme"
    assert header.rows == 64


def test_pydicom_path_decodes_items_in_the_parents_iso2022_character_set():
    # Before this was fixed, an item without its own Specific Character Set inside a
    # Japanese dataset was decoded as Latin-1 (escape sequences in the JSON).
    ds = _base()
    ds.SpecificCharacterSet = ["ISO 2022 IR 6", "ISO 2022 IR 87"]
    item = Dataset()
    item.StudyDescription = "山田"
    ds.ReferencedStudySequence = Sequence([item])
    buf = io.BytesIO()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(buf)
    buf.seek(0)
    read = pydicom.dcmread(buf, force=True)
    ours = dataset_to_json(read)
    assert ours["00081110"]["Value"][0]["00081030"]["Value"] == ["山田"]
    assert ours == read.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=str)


def test_absurd_nesting_and_odd_bytes_fall_back_to_pydicom(tmp_path):
    # 3,000 nested undefined-length sequences (ContentSequence): the direct parser gives up
    # instead of letting a RecursionError escape, and read_header still answers
    good = _save(_base(), tmp_path / "base.dcm").read_bytes()
    depth = 3000
    opening = b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    closing = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    deep = tmp_path / "deep.dcm"
    deep.write_bytes(good + opening * depth + closing * depth)
    with pytest.raises(rawheader.Unsupported):
        _direct(deep)
    with contextlib.suppress(reader.InvalidDicom):  # pydicom may refuse it; no other error
        reader.read_header(deep)
    # a transfer syntax that is not ASCII
    data = bytearray(good)
    data[data.index(b"1.2.840.10008.1.2.1")] = 0xFF
    odd = tmp_path / "odd-ts.dcm"
    odd.write_bytes(bytes(data))
    with pytest.raises(rawheader.Unsupported):
        _direct(odd)


def test_repeated_values_are_encoded_once_and_read_the_same(tmp_path, monkeypatch):
    # The same bytes under two character sets are two names; a series' repeated values come
    # from the memo; and a full memo, cleared, changes nothing.
    monkeypatch.setattr(rawheader, "_VALUES", {})
    monkeypatch.setattr(rawheader, "_VALUES_MAX", 8)
    utf8, latin1 = _base(), _base()
    utf8.SpecificCharacterSet, latin1.SpecificCharacterSet = "ISO_IR 192", "ISO_IR 100"
    # written as the same bytes, M\xc3\xbcller, in the two character sets
    utf8.PatientName, latin1.PatientName = "Müller^Anna", "MÃ¼ller^Anna"
    paths = [_save(utf8, tmp_path / "utf8.dcm"), _save(latin1, tmp_path / "latin1.dcm")]
    assert b"M\xc3\xbcller" in paths[0].read_bytes() and b"M\xc3\xbcller" in paths[1].read_bytes()
    names = [_direct(p).dicom_json["00100010"]["Value"][0]["Alphabetic"] for p in paths]
    assert names == ["Müller^Anna", "MÃ¼ller^Anna"]
    series = [make_ct(tmp_path / f"ct{i}.dcm", size=16) for i in range(4)]
    for path in series * 2:  # read twice: the second round's values all come from the memo
        assert _direct(path).dicom_json == _via_pydicom(path)[0]
    assert 0 < len(rawheader._VALUES) <= 8
