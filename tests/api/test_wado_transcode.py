"""WADO-RS retrieval in the transfer syntax a client accepts: Explicit VR Little Endian where
it names none (PS3.18 since 2016c, and what dicomweb-client, OHIF and most viewers assume),
the stored bytes for ``transfer-syntax=*``, 406 where nothing acceptable can be made. The
pixels after a conversion are checked against pydicom's decoding of the stored file."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import get_frame
from pydicom.uid import generate_uid

from pacs_app.api.dicomweb.negotiate import accepted_frame_types, accepted_syntaxes
from pacs_app.core.errors import NotAcceptable
from pacs_app.dicom import pixels, transcode
from pacs_app.dicom.transcode import ANY, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, CannotConvert
from pacs_app.models import Role
from tests.api.test_dicomweb import _auth
from tests.dicom_factory import (
    TESTDATA,
    make_bits_above_stored,
    make_multiframe,
    make_single_bit,
    restamped,
)
from tests.factories import make_centre, make_user

pytestmark = pytest.mark.skipif(
    not TESTDATA.exists(), reason=f"shared test data not found at {TESTDATA}"
)
SYNTAXES = TESTDATA / "transfer_syntax"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _dicom(syntax: str) -> str:
    return f'multipart/related; type="application/dicom"; transfer-syntax={syntax}'


def _parts(response) -> list[tuple[str, bytes]]:
    """Each part's Content-Type and body."""
    boundary = response.headers["content-type"].split("boundary=")[1].encode()
    parts = []
    for chunk in response.content.split(b"--" + boundary)[1:-1]:
        head, body = chunk.split(b"\r\n\r\n", 1)
        [ctype] = [
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-type:")
        ]
        parts.append((ctype, body[:-2]))
    return parts


def _read(body: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(body))


# --- the Accept header ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "syntaxes"),
    [
        (None, [EXPLICIT_LE]),
        ("", [EXPLICIT_LE]),
        ("*/*", [EXPLICIT_LE]),
        ('multipart/related; type="application/dicom"', [EXPLICIT_LE]),
        ("multipart/related; type=application/dicom", [EXPLICIT_LE]),
        (DICOM_ANY, [ANY]),
        ("application/dicom; transfer-syntax=1.2.840.10008.1.2", [IMPLICIT_LE]),
        (
            f"{_dicom(J2K_LOSSLESS)}, {_dicom(EXPLICIT_LE)};q=0.5, {_dicom(JPEG_BASELINE)};q=0",
            [J2K_LOSSLESS, EXPLICIT_LE],
        ),
        (f'multipart/related; type="application/octet-stream", {_dicom(ANY)}', [ANY]),
    ],
)
def test_the_accept_header_names_the_transfer_syntaxes(accept, syntaxes):
    assert accepted_syntaxes(accept) == syntaxes


@pytest.mark.parametrize(
    "accept",
    [
        "application/dicom+json",
        'multipart/related; type="application/octet-stream"',
        f"{_dicom(ANY)};q=0",
    ],
)
def test_an_accept_header_without_dicom_is_refused(accept):
    with pytest.raises(NotAcceptable, match="does not take"):
        accepted_syntaxes(accept)


def test_what_an_instance_is_sent_as():
    assert transcode.target(J2K_LOSSLESS, [ANY]) is None
    assert transcode.target(J2K_LOSSLESS, [JPEG_BASELINE, J2K_LOSSLESS]) is None
    assert transcode.target(J2K_LOSSLESS, [EXPLICIT_LE]) == EXPLICIT_LE
    assert transcode.target(J2K_LOSSLESS, [JPEG_BASELINE, IMPLICIT_LE]) == IMPLICIT_LE
    assert transcode.target("", [ANY]) is None  # as stored, even a file without meta
    assert transcode.target("", [EXPLICIT_LE]) == EXPLICIT_LE
    assert transcode.target(EXPLICIT_BE, [ANY]) is None
    with pytest.raises(CannotConvert, match="transfer-syntax=\\*"):
        transcode.target(EXPLICIT_BE, [EXPLICIT_LE])
    with pytest.raises(CannotConvert, match="converts only"):
        transcode.target(EXPLICIT_LE, [JPEG_BASELINE])


# --- conversion ----------------------------------------------------------------------------

CONVERTIBLE = (
    sorted(
        p.name
        for p in SYNTAXES.glob("*.dcm")
        if pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID != EXPLICIT_BE
    )
    if SYNTAXES.exists()
    else []
)


# (MR_small_padded.dcm has 128 bytes too many; pydicom says so and leaves them out)
@pytest.mark.filterwarnings("ignore:The pixel data is .* excess padding")
@pytest.mark.parametrize("name", CONVERTIBLE)
@pytest.mark.parametrize("to", [EXPLICIT_LE, IMPLICIT_LE])
def test_conversion_keeps_every_pixel_and_element(name, to):
    path = SYNTAXES / name
    stored = pydicom.dcmread(path)
    converted = _read(transcode.convert(path, to))
    assert converted.file_meta.TransferSyntaxUID == to
    assert converted.SOPInstanceUID == stored.SOPInstanceUID
    assert converted.file_meta.MediaStorageSOPInstanceUID == stored.SOPInstanceUID
    expected = stored.pixel_array
    assert converted.pixel_array.dtype == expected.dtype
    assert np.array_equal(converted.pixel_array, expected)
    skip = {"PixelData", "PhotometricInterpretation", "PlanarConfiguration"}
    for element in stored:
        # Implicit VR leaves private elements' VRs to a reader's dictionary (PS3.5 §7.1.3)
        private = element.tag.is_private and to == IMPLICIT_LE
        if element.keyword not in skip and element.tag.group != 0x7FE0 and not private:
            assert converted[element.tag].value == element.value, element.keyword


def test_decoded_lossy_pixel_data_says_it_was_lossy(tmp_path):
    ds = pydicom.dcmread(SYNTAXES / "SC_rgb_jpeg_dcmtk.dcm")
    del ds.LossyImageCompression
    ds.save_as(tmp_path / "lossy.dcm")
    converted = _read(transcode.convert(tmp_path / "lossy.dcm", EXPLICIT_LE))
    assert converted.LossyImageCompression == "01"
    assert converted.PhotometricInterpretation == "RGB"


def test_what_cannot_be_converted_says_why():
    with pytest.raises(CannotConvert, match="could not be decoded"):
        transcode.convert(
            TESTDATA / "malformed" / "JPEG2000-embedded-sequence-delimiter.dcm", EXPLICIT_LE
        )
    with pytest.raises(CannotConvert, match="Big Endian"):
        transcode.convert(SYNTAXES / "MR_small_bigendian.dcm", EXPLICIT_LE)


def test_a_file_without_meta_information_gets_it():
    converted = _read(
        transcode.convert(TESTDATA / "malformed" / "ExplVR_LitEndNoMeta.dcm", EXPLICIT_LE)
    )
    assert converted.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert converted.file_meta.MediaStorageSOPClassUID == converted.SOPClassUID


# --- over HTTP -----------------------------------------------------------------------------


def _restamp(name: str, dest, study_uid: str, series_uid: str) -> pydicom.Dataset:
    """A copy of a test file (several share their UIDs) as a new instance of one study."""
    ds = pydicom.dcmread(TESTDATA / name)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID, ds.PatientName = "TS-1", "SYNTAX^TEST"
    ds.save_as(dest)
    return ds


@pytest.fixture
def mixed(api, session, tmp_path):
    """One study of the same MR image stored in four transfer syntaxes and a JPEG colour one."""
    north = make_centre(session, "NORTH")
    make_centre(session, "SOUTH")
    make_user(session, Role.TECHNICIAN, centre=north, username="tech")
    headers = _auth(api, "tech")
    study_uid, series_uid = generate_uid(), generate_uid()
    names = {
        "j2k": "transfer_syntax/MR_small_jp2klossless.dcm",
        "rle": "transfer_syntax/MR_small_RLE.dcm",
        "be": "transfer_syntax/MR_small_bigendian.dcm",
        "implicit": "transfer_syntax/MR_small_implicit.dcm",
        "jpeg": "transfer_syntax/SC_rgb_jpeg_dcmtk.dcm",
    }
    paths = {key: tmp_path / f"{key}.dcm" for key in names}
    sent = {key: _restamp(name, paths[key], study_uid, series_uid) for key, name in names.items()}
    files = [("files", (p.name, p.read_bytes())) for p in paths.values()]
    r = api.post("/studies", headers=headers, files=files)
    assert r.status_code == 201, r.text
    base = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances"
    return {
        "headers": headers,
        "study": f"/dicomweb/studies/{study_uid}",
        "url": {key: f"{base}/{ds.SOPInstanceUID}" for key, ds in sent.items()},
        "sent": sent,
        "paths": paths,
    }


def _get(api, mixed, url, accept=None):
    headers = dict(mixed["headers"])
    if accept is not None:
        headers["Accept"] = accept
    return api.get(url, headers=headers)


def test_an_instance_comes_uncompressed_unless_the_client_takes_its_stored_syntax(api, mixed):
    url, sent = mixed["url"]["j2k"], mixed["sent"]["j2k"]
    for accept in (None, "*/*", _dicom(EXPLICIT_LE), 'multipart/related; type="application/dicom"'):
        r = _get(api, mixed, url, accept)
        assert r.status_code == 200, (accept, r.text)
        [(ctype, body)] = _parts(r)
        assert ctype == f"application/dicom; transfer-syntax={EXPLICIT_LE}", accept
        ds = _read(body)
        assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
        assert ds.SOPInstanceUID == sent.SOPInstanceUID
        assert np.array_equal(ds.pixel_array, sent.pixel_array)
    # as stored, byte for byte, for a client that takes any syntax or this one
    for accept in (DICOM_ANY, f"{_dicom(JPEG_BASELINE)}, {_dicom(J2K_LOSSLESS)}"):
        [(ctype, body)] = _parts(_get(api, mixed, url, accept))
        assert ctype == f"application/dicom; transfer-syntax={J2K_LOSSLESS}"
        assert body == mixed["paths"]["j2k"].read_bytes()
    [(ctype, body)] = _parts(_get(api, mixed, url, _dicom(IMPLICIT_LE)))
    assert ctype.endswith(IMPLICIT_LE) and _read(body).file_meta.TransferSyntaxUID == IMPLICIT_LE
    # an uncompressed instance the client takes goes as it is
    [(ctype, body)] = _parts(_get(api, mixed, mixed["url"]["implicit"], _dicom(IMPLICIT_LE)))
    assert body == mixed["paths"]["implicit"].read_bytes()


def test_a_jpeg_instance_is_decoded_to_rgb_and_marked_lossy(api, mixed):
    [(_, body)] = _parts(_get(api, mixed, mixed["url"]["jpeg"]))
    ds = _read(body)
    assert ds.PhotometricInterpretation == "RGB" and ds.LossyImageCompression == "01"
    assert np.array_equal(ds.pixel_array, mixed["sent"]["jpeg"].pixel_array)


def test_what_cannot_be_made_acceptable_is_a_406(api, mixed):
    r = _get(api, mixed, mixed["url"]["j2k"], _dicom(JPEG_BASELINE))
    assert r.status_code == 406 and "converts only" in r.json()["detail"]
    r = _get(api, mixed, mixed["url"]["be"])
    assert r.status_code == 406 and "transfer-syntax=*" in r.json()["detail"]
    r = _get(api, mixed, mixed["url"]["be"], DICOM_ANY)
    [(ctype, body)] = _parts(r)
    assert ctype.endswith(EXPLICIT_BE) and body == mixed["paths"]["be"].read_bytes()
    r = _get(api, mixed, mixed["url"]["j2k"], "application/dicom+json")
    assert r.status_code == 406 and "Accept" in r.json()["detail"]
    # refusals still check who asks
    assert (
        api.get(mixed["url"]["j2k"], headers={"Accept": _dicom(JPEG_BASELINE)}).status_code == 401
    )


def test_a_study_streams_converted_and_says_what_it_could_not_convert(api, mixed):
    r = _get(api, mixed, mixed["study"])
    assert r.status_code == 200
    parts = _parts(r)
    assert len(parts) == 5
    by_uid = {_read(body).SOPInstanceUID: (ctype, _read(body)) for ctype, body in parts}
    for key, sent in mixed["sent"].items():
        ctype, ds = by_uid[sent.SOPInstanceUID]
        # nothing is left out: the big endian one goes as stored, and says so
        syntax = EXPLICIT_BE if key == "be" else EXPLICIT_LE
        assert ctype == f"application/dicom; transfer-syntax={syntax}", key
        assert ds.file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(ds.pixel_array, sent.pixel_array), key
    assert "1 instance" in r.headers["warning"] and "transfer-syntax=*" in r.headers["warning"]
    # as stored, every byte, for a client that takes any syntax
    r = _get(api, mixed, mixed["study"], DICOM_ANY)
    assert "warning" not in r.headers
    assert sorted(body for _, body in _parts(r)) == sorted(
        p.read_bytes() for p in mixed["paths"].values()
    )
    r = _get(api, mixed, mixed["study"], "application/dicom+json")
    assert r.status_code == 406


# --- frames ------------------------------------------------------------------------------

OCTET = "application/octet-stream"
FRAMES_ANY = f"multipart/related; type={OCTET}; transfer-syntax=*"  # as OHIF asks


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        (None, [(OCTET, EXPLICIT_LE)]),
        ("*/*", [(OCTET, EXPLICIT_LE)]),
        (f'multipart/related; type="{OCTET}"', [(OCTET, EXPLICIT_LE)]),
        (FRAMES_ANY, [(OCTET, ANY)]),
        ('multipart/related; type="image/jpeg"', [("image/jpeg", JPEG_BASELINE)]),
        (
            f'multipart/related; type="image/jp2", multipart/related; type="image/*"; q=0.5, '
            f'multipart/related; type="{OCTET}"; q=0',
            [("image/jp2", J2K_LOSSLESS), ("image/*", ANY)],
        ),
    ],
)
def test_the_accept_header_names_the_frame_types(accept, wanted):
    assert accepted_frame_types(accept) == wanted


@pytest.mark.parametrize("accept", [_dicom(ANY), "application/dicom+json", "text/html"])
def test_an_accept_header_without_frames_is_refused(accept):
    with pytest.raises(NotAcceptable, match="does not take"):
        accepted_frame_types(accept)


def _stored_frames(path, count: int = 1) -> list[bytes]:
    ds = pydicom.dcmread(path)
    return [get_frame(ds.PixelData, i, number_of_frames=count) for i in range(count)]


def test_compressed_frames_go_as_stored_to_a_client_that_decodes_them(api, mixed):
    """OHIF asks for frames in any syntax and decodes them as the metadata describes them: a
    JPEG colour image's frame must then be the JPEG (YBR), not decoded RGB bytes that it
    would read as YBR (seen: a garbled green echocardiogram)."""
    url = mixed["url"]["jpeg"] + "/frames/1"
    [(ctype, body)] = _parts(_get(api, mixed, url, FRAMES_ANY))
    assert ctype == f"{OCTET}; transfer-syntax={JPEG_BASELINE}"
    assert body == _stored_frames(mixed["paths"]["jpeg"])[0] and body[:2] == b"\xff\xd8"
    assert Image.open(io.BytesIO(body)).size == (100, 100)
    for accept in ('multipart/related; type="image/jpeg"', 'multipart/related; type="image/*"'):
        r = _get(api, mixed, url, accept)
        assert r.headers["content-type"].startswith('multipart/related; type="image/jpeg"')
        [(ctype, same)] = _parts(r)
        assert ctype == f"image/jpeg; transfer-syntax={JPEG_BASELINE}" and same == body
    # uncompressed, as this server's viewer asks: decoded, colour as interleaved RGB
    for accept in (None, f'multipart/related; type="{OCTET}"'):
        [(ctype, raw)] = _parts(_get(api, mixed, url, accept))
        assert ctype == f"{OCTET}; transfer-syntax={EXPLICIT_LE}"
        assert raw == pixels.raw_frame(pydicom.dcmread(mixed["paths"]["jpeg"]), 0)
    # J2K and RLE likewise; a compressed type other than the stored one is refused
    j2k = mixed["url"]["j2k"] + "/frames/1"
    [(ctype, body)] = _parts(_get(api, mixed, j2k, 'multipart/related; type="image/jp2"'))
    assert ctype == f"image/jp2; transfer-syntax={J2K_LOSSLESS}"
    assert body == _stored_frames(mixed["paths"]["j2k"])[0]
    r = _get(api, mixed, j2k, 'multipart/related; type="image/jpeg"')
    assert r.status_code == 406 and "JPEG 2000" in r.json()["detail"]
    [(ctype, body)] = _parts(_get(api, mixed, mixed["url"]["rle"] + "/frames/1", FRAMES_ANY))
    assert ctype.endswith("1.2.840.10008.1.2.5")
    assert body == _stored_frames(mixed["paths"]["rle"])[0]
    # who asks is checked before what they accept
    r = api.get(j2k, headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert r.status_code == 401


def test_native_frames_as_stored_are_little_endian_stored_values(api, mixed):
    sent = mixed["sent"]["be"]
    for accept in (FRAMES_ANY, None):
        [(ctype, body)] = _parts(_get(api, mixed, mixed["url"]["be"] + "/frames/1", accept))
        assert ctype == f"{OCTET}; transfer-syntax={EXPLICIT_LE}"
        assert body == sent.pixel_array.astype(sent.pixel_array.dtype.newbyteorder("<")).tobytes()


def _uploaded_alone(api, session, path, username: str) -> tuple[dict[str, str], str]:
    """``path`` uploaded by a technician of a centre of its own: their headers, and the
    instance's WADO-RS URL."""
    centre = make_centre(session, username.upper())
    make_user(session, Role.TECHNICIAN, centre=centre, username=username)
    headers = _auth(api, username)
    r = api.post("/studies", headers=headers, files=[("files", (path.name, path.read_bytes()))])
    assert r.status_code == 201, r.text
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return headers, (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def test_native_colour_frames_as_stored_keep_their_planes(api, session, tmp_path):
    """A native RGB image stored plane by plane (Planar Configuration 1): its frames keep the
    planes its metadata declares, as stored and uncompressed alike (seen: uncompressed frames
    interleaved, which a client reading the metadata takes for planes)."""
    ds = make_multiframe(tmp_path / "rgb.dcm", frames=2, size=4)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 1
    planes = np.arange(2 * 3 * 16, dtype=np.uint8).reshape(2, 3, 4, 4)
    ds.PixelData = planes.tobytes()
    ds.save_as(tmp_path / "rgb.dcm", enforce_file_format=True)
    headers, instance = _uploaded_alone(api, session, tmp_path / "rgb.dcm", "planes")
    url = instance + "/frames/2,1"
    parts = _parts(api.get(url, headers={**headers, "Accept": FRAMES_ANY}))
    assert [body for _, body in parts] == [planes[1].tobytes(), planes[0].tobytes()]
    for accept in (None, f'multipart/related; type="{OCTET}"'):
        parts = _parts(api.get(url, headers={**headers, **({"Accept": accept} if accept else {})}))
        assert [ctype for ctype, _ in parts] == [f"{OCTET}; transfer-syntax={EXPLICIT_LE}"] * 2
        assert [body for _, body in parts] == [planes[1].tobytes(), planes[0].tobytes()]


@pytest.mark.parametrize(
    "name",
    ["pydicom:palette", "transfer_syntax/SC_ybr_full_422_uncompressed.dcm"],
)
def test_uncompressed_native_colour_frames_are_what_the_metadata_describes(
    api, session, tmp_path, name
):
    """Palette indexes, not the RGB they stand for (seen: three bytes a pixel for an image
    of one sample); YBR_FULL_422 subsampled, not converted to RGB."""
    if not name.startswith("pydicom:") and not (TESTDATA / name).exists():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    path = restamped(name, tmp_path, "NATIVE-1", "NATIVE^COLOUR")
    ds = pydicom.dcmread(path)
    headers, instance = _uploaded_alone(api, session, path, "colour")
    url = instance + "/frames/1"
    [(ctype, body)] = _parts(api.get(url, headers=headers))
    assert ctype == f"{OCTET}; transfer-syntax={EXPLICIT_LE}"
    samples = ds.Rows * ds.Columns * ds.SamplesPerPixel
    if ds.PhotometricInterpretation == "YBR_FULL_422":
        samples = samples * 2 // 3
    assert body == ds.PixelData[: samples * ds.BitsAllocated // 8]
    meta = api.get(url.rsplit("/frames", 1)[0] + "/metadata", headers=headers).json()[0]
    assert meta["00280004"]["Value"] == [ds.PhotometricInterpretation]


def test_single_bit_frames_come_packed_as_the_metadata_describes(api, session, tmp_path):
    """Bits packed 8 to a byte, each frame from the start of one, uncompressed and as stored
    alike (seen: a byte a pixel uncompressed, and a frame starting inside a byte as stored
    refused, so decoded); its rendered frames too."""
    bits = make_single_bit(tmp_path / "bits.dcm")
    headers, instance = _uploaded_alone(api, session, tmp_path / "bits.dcm", "bits")
    packed = [np.packbits(frame.ravel(), bitorder="little").tobytes() for frame in bits]
    for accept in (None, FRAMES_ANY):
        r = api.get(
            instance + "/frames/2,3", headers={**headers, **({"Accept": accept} if accept else {})}
        )
        parts = _parts(r)
        assert [ctype for ctype, _ in parts] == [f"{OCTET}; transfer-syntax={EXPLICIT_LE}"] * 2
        assert [body for _, body in parts] == packed[1:]
    png = api.get(instance + "/frames/2/rendered", headers={**headers, "Accept": "image/png"})
    assert png.status_code == 200, png.text
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.content))), bits[1] * 255)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_greyscale_frames_uncompressed_are_values_not_words(api, session, tmp_path, signed):
    """Only the bits up to High Bit are a value's (PS3.5 8.1.1); images of before 2004 kept
    overlay planes above them, and some devices leave other bits there. Uncompressed frames
    (what this server's viewer asks for) are the values: those bits cleared, signed values
    sign-extended; as stored, the words as they are (a client that decodes frames masks
    them). The rendering is by the values' min-max."""
    values = make_bits_above_stored(tmp_path / "bits.dcm", signed=signed)
    words = np.frombuffer(pydicom.dcmread(tmp_path / "bits.dcm").PixelData, "<u2")
    assert (words >> 12).any() and (values < 0).any() == signed
    headers, instance = _uploaded_alone(api, session, tmp_path / "bits.dcm", "highbits")
    url = instance + "/frames/1"
    [(_, body)] = _parts(api.get(url, headers=headers))
    assert body == values.astype("<i2" if signed else "<u2").tobytes()
    [(_, body)] = _parts(api.get(url, headers={**headers, "Accept": FRAMES_ANY}))
    assert body == words.tobytes()
    png = api.get(url + "/rendered", headers={**headers, "Accept": "image/png"})
    window = pixels.min_max_window(values.astype(np.float64))
    expected = pixels.apply_window(values.astype(np.float64), window)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.content))), expected)


def test_big_endian_frames_as_stored_swap_the_words_they_were_stored_in(api, mixed, tmp_path):
    """Explicit VR Big Endian swaps each word of an OW value, 8-bit samples in pairs: an RGB
    image of 8-bit samples stored so comes as stored in its sample order (seen swapped)."""
    path = tmp_path / "odd.dcm"
    sent = _restamp(
        "transfer_syntax/SC_rgb_small_odd_big_endian.dcm",
        path,
        mixed["sent"]["be"].StudyInstanceUID,
        mixed["sent"]["be"].SeriesInstanceUID,
    )
    assert sent["PixelData"].VR == "OW" and sent.BitsAllocated == 8
    r = api.post(
        "/studies", headers=mixed["headers"], files=[("files", ("odd.dcm", path.read_bytes()))]
    )
    assert r.status_code == 201, r.text
    url = mixed["url"]["be"].rsplit("/", 1)[0] + f"/{sent.SOPInstanceUID}/frames/1"
    for accept in (FRAMES_ANY, None):
        [(ctype, body)] = _parts(_get(api, mixed, url, accept))
        assert ctype == f"{OCTET}; transfer-syntax={EXPLICIT_LE}"
        assert body == sent.pixel_array.tobytes()  # interleaved RGB, as stored
