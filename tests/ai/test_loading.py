"""Series selection and loading (pacs_app.ai.loading) and model inputs (pacs_app.ai.preprocess),
on the real files of the shared test data."""

from __future__ import annotations

import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pacs_app.ai.base import SeriesVolume
from pacs_app.ai.loading import (
    InstanceRef,
    SeriesCandidate,
    SeriesLoadError,
    candidates_from_files,
    instance_ref,
    load_series,
    select_series,
    volume_from_datasets,
)
from tests.dicom_factory import TESTDATA

pytestmark = pytest.mark.skipif(
    not TESTDATA.is_dir(), reason=f"the shared DICOM test data is absent ({TESTDATA})"
)

CT5N = TESTDATA / "series" / "98892001" / "CT5N"  # 5 axial CT slices, 2.5 mm apart
CT_SCOUT = TESTDATA / "series" / "98892001" / "CT2N"  # 2 CT localizers
MR_ANGIO = TESTDATA / "series" / "98892003" / "MR700"  # 7 MR projection images


def _read_header(path: Path) -> dict:
    """The DICOM JSON the app stores per instance at ingest ({} where pydicom cannot)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(path, stop_before_pixels=True, force=True).to_json_dict()
        except Exception:
            return {}


def _text(header: dict, tag: str) -> str:
    values = header.get(tag, {}).get("Value") or [""]
    return str(values[0])


def candidate(*paths: Path) -> SeriesCandidate:
    """One candidate holding ``paths`` (series fields from the first file)."""
    headers = [_read_header(p) for p in paths]
    return SeriesCandidate(
        series_uid=_text(headers[0], "0020000E"),
        modality=_text(headers[0], "00080060"),
        body_part=_text(headers[0], "00180015"),
        description=_text(headers[0], "0008103E"),
        instances=[instance_ref(p, h) for p, h in zip(paths, headers, strict=True)],
    )


def candidates(paths: list[Path]) -> list[SeriesCandidate]:
    """``paths`` grouped by SeriesInstanceUID, as the index groups them."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(_text(_read_header(path), "0020000E"), []).append(path)
    return [candidate(*group) for group in groups.values()]


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


def raw(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def _normal(orientation) -> np.ndarray:
    return np.cross(orientation[:3], orientation[3:])


# --- greyscale values ----------------------------------------------------------------------


def test_ct_gives_hounsfield_units_and_spacing():
    path = TESTDATA / "clinical" / "CT_small.dcm"
    volume = load_series(candidate(path))
    ds = raw(path)

    assert volume.pixels.shape == (1, 128, 128)
    assert volume.pixels.dtype == np.float32
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(
        ds.RescaleIntercept
    )
    np.testing.assert_array_equal(volume.pixels[0], expected.astype(np.float32))
    assert -1100 < volume.pixels.min() < -800  # air, as far as this downsized slice goes
    assert 500 < volume.pixels.max() < 3100  # bone, not beyond the 12-bit CT scale
    assert volume.value_range == (-32768 - 1024, 32767 - 1024)  # signed 16 bits, rescaled
    assert volume.spacing == pytest.approx((5.0, 0.661468, 0.661468))
    assert volume.slice_thickness == pytest.approx(5.0)
    assert volume.positions == [pytest.approx((-158.135803, -179.035797, -75.699997))]
    assert volume.frame_sources == [(str(ds.SOPInstanceUID), 0)]
    assert volume.modality == "CT"
    assert volume.photometric == "MONOCHROME2"
    assert volume.transfer_syntaxes == [pydicom.uid.ExplicitVRLittleEndian]
    assert volume.headers[0]["00080018"]["Value"] == [ds.SOPInstanceUID]
    assert volume.warnings == []


def test_ct_512_air_is_near_minus_1000():
    volume = load_series(candidate(TESTDATA / "clinical" / "CT_pancreas_TCIA_explicitVR_UN.dcm"))
    assert volume.pixels.shape == (1, 512, 512)
    assert -1100 <= np.percentile(volume.pixels, 1) <= -900
    assert volume.spacing[1:] == pytest.approx((0.859375, 0.859375))


@pytest.mark.parametrize(
    "path",
    [
        TESTDATA / "clinical" / "DX_thorax_highdicom.dcm",
        TESTDATA / "series" / "77654033" / "CR1" / "6154",  # CR with a rescale to 200..3001
        TESTDATA / "clinical" / "CR_extremity_RG3_J2KI.dcm",
    ],
    ids=["DX", "CR_rescaled", "CR_J2K"],
)
def test_monochrome1_is_inverted_so_higher_is_brighter(path):
    ds = raw(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    stored = ds.pixel_array.ravel()
    volume = load_series(candidate(path))
    loaded = volume.pixels[0].ravel()

    # The order of intensities reverses: brighter-stored (denser on MONOCHROME1) is darker.
    by_stored = loaded[np.argsort(stored, kind="stable")]
    assert np.all(np.diff(by_stored) <= 1e-3)
    assert loaded[np.argmax(stored)] == loaded.min()
    assert loaded[np.argmin(stored)] == loaded.max()
    # new = max + min of the range - value, so the range maps onto itself.
    low, high = volume.value_range
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    np.testing.assert_allclose(loaded, high + low - (stored * slope + intercept), atol=1e-3)
    assert low <= loaded.min() and loaded.max() <= high
    assert volume.photometric == "MONOCHROME1"


# --- multi-frame ---------------------------------------------------------------------------


def test_colour_multiframe_ultrasound_stays_uint8_rgb():
    path = TESTDATA / "clinical" / "US_multiframe_30f_jpeg.dcm"
    volume = load_series(candidate(path))
    uid = str(raw(path).SOPInstanceUID)

    assert volume.pixels.shape == (30, 240, 320, 3)
    assert volume.pixels.dtype == np.uint8
    assert volume.is_color and volume.frames == 30
    assert volume.frame_sources == [(uid, i) for i in range(30)]
    assert volume.positions == [None] * 30
    assert volume.value_range == (0.0, 255.0)
    # 0.051 cm per pixel in the calibrated region, said so in the warnings
    assert volume.spacing[1:] == pytest.approx((0.5105, 0.5105), abs=1e-3)
    assert any("ultrasound region" in w for w in volume.warnings)


def test_enhanced_mr_multiframe_loads_every_frame():
    path = TESTDATA / "clinical" / "MR_enhanced_multiframe_10f.dcm"
    volume = load_series(candidate(path))
    ds = raw(path)

    assert volume.pixels.shape == (10, 64, 64)
    assert volume.pixels.dtype == np.float32
    # This file carries no functional groups: no positions, frames in their stored order, and
    # the slice spacing from SpacingBetweenSlices.
    assert volume.frame_sources == [(str(ds.SOPInstanceUID), i) for i in range(10)]
    assert volume.positions == [None] * 10
    assert volume.spacing[0] == pytest.approx(1.2)
    np.testing.assert_array_equal(volume.pixels, ds.pixel_array.astype(np.float32))
    assert volume.value_range == (0.0, 4095.0)  # 12 bits stored, unsigned


def test_enhanced_ct_takes_geometry_and_rescale_from_the_functional_groups():
    path = TESTDATA / "clinical" / "CT_enhanced_multiframe_2f.dcm"
    volume = load_series(candidate(path))
    ds = raw(path)
    uid = str(ds.SOPInstanceUID)

    assert volume.pixels.shape == (2, 512, 512)
    # Orientation (-1,0,0 / 0,1,0): the normal points to -z, so z=-149 comes before z=-159.
    assert volume.frame_sources == [(uid, 1), (uid, 0)]
    assert volume.positions == [
        pytest.approx((99.5, -301.5, -149.0)),
        pytest.approx((99.5, -301.5, -159.0)),
    ]
    assert volume.orientations == [pytest.approx((-1, 0, 0, 0, 1, 0))] * 2
    assert volume.spacing == pytest.approx((10.0, 0.388672, 0.388672))
    assert volume.slice_thickness == pytest.approx(10.0)
    stored = ds.pixel_array
    for i, (_, frame) in enumerate(volume.frame_sources):  # per-frame rescale: intercept -1024
        np.testing.assert_array_equal(volume.pixels[i], stored[frame].astype(np.float32) - 1024)
    assert volume.value_range == (-1024.0, 65535.0 - 1024)


# --- series geometry -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_series_is_sorted_by_position_whatever_the_file_order(seed):
    paths = files(CT5N)
    random.Random(seed).shuffle(paths)
    volume = load_series(candidate(*paths))

    assert volume.pixels.shape == (5, 16, 16)
    normal = _normal(volume.orientations[0])
    offsets = [float(np.dot(normal, p)) for p in volume.positions]
    assert np.all(np.diff(offsets) > 0)
    assert volume.spacing == pytest.approx((2.5, 0.488281, 0.488281))
    assert volume.instance_numbers == [10, 9, 8, 7, 6]  # numbered head to feet here
    assert len(volume.headers) == 5
    for i, (uid, frame) in enumerate(volume.frame_sources):
        path = next(p for p in paths if str(raw(p).SOPInstanceUID) == uid)
        ds = raw(path)
        assert frame == 0
        assert volume.positions[i] == pytest.approx(
            tuple(float(v) for v in ds.ImagePositionPatient)
        )
        expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(volume.pixels[i], expected.astype(np.float32))
    assert volume.warnings == []


def test_series_with_a_gap_warns_and_gives_the_median_spacing():
    volume = load_series(candidate(*files(TESTDATA / "series" / "77654033" / "CT2")))
    assert volume.frames == 4
    assert volume.spacing[0] == pytest.approx(1.25)
    assert any("irregular" in w for w in volume.warnings)


def test_two_slice_mr_series_spacing():
    folder = TESTDATA / "series" / "nibabel_siemens_mr"
    volume = load_series(candidate(*reversed(files(folder))))
    assert volume.frames == 2
    assert volume.instance_numbers == [1, 2]
    assert volume.spacing[0] == pytest.approx(3.0)


def test_frames_of_different_orientations_keep_instance_order_without_slice_spacing():
    volume = load_series(candidate(*files(MR_ANGIO)))
    assert volume.instance_numbers == sorted(volume.instance_numbers)
    assert volume.spacing[0] is None
    assert any("orientation" in w for w in volume.warnings)


def test_volume_from_datasets_matches_load_series():
    paths = files(CT5N)
    from_files = load_series(candidate(*paths))
    from_memory = volume_from_datasets([raw(p) for p in reversed(paths)])
    np.testing.assert_array_equal(from_memory.pixels, from_files.pixels)
    assert from_memory.frame_sources == from_files.frame_sources
    assert from_memory.spacing == from_files.spacing
    assert from_memory.series_uid == from_files.series_uid


@pytest.mark.parametrize("small_first", [False, True])
def test_mixed_frame_sizes_keep_the_largest_group(small_first):
    small = TESTDATA / "clinical" / "CT_small.dcm"
    paths = [small, *files(CT5N)] if small_first else [*files(CT5N), small]
    volume = load_series(candidate(*paths))
    assert volume.pixels.shape == (5, 16, 16)
    warning = next(w for w in volume.warnings if "mixes image sizes" in w)
    assert str(raw(small).SOPInstanceUID) in warning
    assert "128x128" in warning
    reference = load_series(candidate(*files(CT5N)))
    np.testing.assert_array_equal(volume.pixels, reference.pixels)
    assert volume.frame_sources == reference.frame_sources


def test_more_frames_than_the_index_declared_still_load():
    path = TESTDATA / "clinical" / "US_multiframe_30f_jpeg.dcm"
    series = candidate(path)
    series.instances[0] = InstanceRef(**{**vars(series.instances[0]), "number_of_frames": 1})
    volume = load_series(series)
    np.testing.assert_array_equal(volume.pixels, load_series(candidate(path)).pixels)


@pytest.mark.parametrize("seed", range(5))
def test_frames_are_put_in_order_in_place(seed):
    from pacs_app.ai.loading import _permute_in_place

    order = list(range(12))
    random.Random(seed).shuffle(order)
    frames = np.arange(12 * 4, dtype=np.float32).reshape(12, 2, 2)
    expected = frames[order].copy()
    _permute_in_place(frames, order)
    np.testing.assert_array_equal(frames, expected)


# --- what cannot be loaded -----------------------------------------------------------------


def test_an_undecodable_instance_is_skipped_with_a_warning_naming_it():
    truncated = TESTDATA / "malformed" / "MR_truncated.dcm"
    volume = load_series(candidate(*files(CT5N), truncated))
    assert volume.frames == 5
    uid = _text(_read_header(truncated), "00080018")
    assert any(uid in w and "cannot be decoded" in w for w in volume.warnings)


def test_a_series_of_which_nothing_decodes_raises_series_load_error():
    path = TESTDATA / "malformed" / "MR_truncated.dcm"
    with pytest.raises(SeriesLoadError) as caught:
        load_series(candidate(path))
    message = caught.value.message
    assert "No frame" in message and "cannot be decoded" in message
    assert _text(_read_header(path), "00080018") in message


@pytest.mark.parametrize(
    "path",
    files(TESTDATA / "malformed") if (TESTDATA / "malformed").is_dir() else [],
    ids=lambda path: path.name,
)
def test_malformed_files_give_a_volume_or_series_load_error_only(path):
    ref = candidate(path)
    try:
        volume = load_series(ref)
    except SeriesLoadError as exc:
        assert exc.message.startswith("No frame of series")
    else:
        assert isinstance(volume, SeriesVolume) and volume.frames >= 1


def test_unreadable_file_is_skipped_with_a_warning():
    missing = InstanceRef(
        path=CT5N / "does-not-exist",
        sop_instance_uid="1.2.3.4",
        instance_number=99,
        number_of_frames=1,
        rows=16,
        columns=16,
        dicom_json={},
    )
    good = candidate(*files(CT5N))
    good.instances.append(missing)
    volume = load_series(good)
    assert volume.frames == 5
    assert any("1.2.3.4" in w and "cannot be read" in w for w in volume.warnings)


def test_too_many_frames_are_refused_before_reading():
    ref = InstanceRef(
        path=Path("/nonexistent"),
        sop_instance_uid="1.2.3",
        instance_number=1,
        number_of_frames=2001,
        rows=512,
        columns=512,
        dicom_json={},
    )
    with pytest.raises(SeriesLoadError, match="more than the 2000"):
        load_series(SeriesCandidate("1.2", "CT", "", "", [ref]))


def test_too_many_frames_are_refused_when_the_index_understated_them():
    series = candidate(TESTDATA / "clinical" / "US_multiframe_30f_jpeg.dcm")
    series.instances[0] = InstanceRef(**{**vars(series.instances[0]), "number_of_frames": 1})
    with pytest.raises(SeriesLoadError, match="more than 10 frames"):
        load_series(series, max_frames=10)


# --- selection -----------------------------------------------------------------------------


def test_select_series_skips_non_image_series_and_orders_the_rest():
    non_image = TESTDATA / "non_image"
    paths = [
        *files(MR_ANGIO),
        *files(CT_SCOUT),
        *files(CT5N),
        *(non_image / name for name in ("test-SR.dcm", "reportsi.dcm", "SR_TID1500_highdicom.dcm")),
        non_image / "rtstruct.dcm",
        non_image / "rtdose.dcm",
        non_image / "liver_1frame.dcm",
        non_image / "waveform_ecg.dcm",
    ]
    images, skipped = select_series(candidates(paths), "CT", "")

    assert [c.description for c in images] == [
        "SmartScore - Gated 0.5 sec",  # the order's modality
        "ANGIO Projected from   C",  # another modality
        "Scout",  # the localizer, last
    ]
    assert sorted(s.modality for s in skipped) == [
        "ECG",
        "RTDOSE",
        "RTSTRUCT",
        "SEG",
        "SR",
        "SR",
        "SR",
    ]
    assert all(s.instances == 1 for s in skipped)


def test_select_series_orders_by_modality_body_part_then_frames():
    def series(uid: str, modality: str, frames: int, *, body_part="", image_type=()):
        ref = InstanceRef(
            path=Path(uid),
            sop_instance_uid=uid,
            instance_number=1,
            number_of_frames=frames,
            rows=512,
            columns=512,
            dicom_json={"00080008": {"vr": "CS", "Value": list(image_type)}} if image_type else {},
        )
        return SeriesCandidate(uid, modality, body_part, "", [ref])

    study = [
        series("mr", "MR", 500),
        series("ct-thin", "CT", 300),
        series("scout", "CT", 1, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")),
        series("ct-head", "CT", 400, body_part="HEAD"),
        series("ct-thick", "CT", 60, body_part="CHEST"),
        series("sr", "SR", 1),
    ]
    images, skipped = select_series(study, "CT", "CHEST")
    assert [c.series_uid for c in images] == ["ct-thin", "ct-thick", "ct-head", "mr", "scout"]
    assert [s.series_uid for s in skipped] == ["sr"]
    # CR and DX are one kind of order
    cr_dx = [series("dx", "DX", 1), series("ct", "CT", 100)]
    assert [c.series_uid for c in select_series(cr_dx, "CR", "")[0]] == ["dx", "ct"]


def test_candidates_from_files_groups_by_series():
    found = candidates_from_files([*files(CT5N), *files(CT_SCOUT), Path("/nonexistent")])
    assert sorted(len(c.instances) for c in found) == [2, 5]
    assert {c.modality for c in found} == {"CT"}
    assert sum(c.is_localizer for c in found) == 1


# --- preprocessing -------------------------------------------------------------------------


def test_loading_and_preprocess_modules_do_not_import_torch():
    code = (
        "import sys, pacs_app.ai.loading, pacs_app.ai.preprocess\n"
        "print(sorted({'torch', 'monai'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def torch():
    pytest.importorskip("monai", reason="MONAI is not installed")
    return pytest.importorskip("torch", reason="torch is not installed")


@pytest.mark.parametrize(
    ("source", "size", "window"),
    [
        ("CT_small", (64, 64), None),
        ("CT_small", (256, 200), (-1000.0, 1000.0)),
        ("CT5N", (4, 8, 8), (-1000.0, 1000.0)),
        ("CT5N", (10, 32, 32), None),
    ],
)
def test_to_model_input_gives_a_float_tensor_in_0_1(torch, source, size, window):
    from pacs_app.ai.preprocess import to_model_input

    paths = [TESTDATA / "clinical" / "CT_small.dcm"] if source == "CT_small" else files(CT5N)
    tensor = to_model_input(load_series(candidate(*paths)), size, window)
    assert isinstance(tensor, torch.Tensor)
    assert tensor.dtype == torch.float32
    assert tuple(tensor.shape) == (1, *size)
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0
    assert float(tensor.max()) > float(tensor.min())


def test_to_model_input_maps_the_intensity_range_linearly(torch):
    from pacs_app.ai.preprocess import to_model_input

    values = np.array([[-2000.0, -1000.0, 0.0, 1000.0, 3000.0]] * 5, dtype=np.float32)
    volume = SeriesVolume(
        series_uid="1",
        modality="CT",
        body_part="",
        description="",
        pixels=values[np.newaxis],
        spacing=(None, 1.0, 1.0),
        positions=[None],
        orientations=[None],
        instance_numbers=[1],
        frame_sources=[("1.2", 0)],
        headers=[{}],
        photometric="MONOCHROME2",
        slice_thickness=None,
        value_range=(-3024.0, 3071.0),
        transfer_syntaxes=[],
    )
    tensor = to_model_input(volume, (5, 5), (-1000.0, 1000.0))
    np.testing.assert_allclose(tensor[0, 0].numpy(), [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)


def test_to_model_input_of_colour_has_three_channels(torch):
    from pacs_app.ai.preprocess import to_model_input

    volume = load_series(candidate(TESTDATA / "clinical" / "US_multiframe_30f_jpeg.dcm"))
    assert tuple(to_model_input(volume, (120, 160)).shape) == (3, 120, 160)
    assert tuple(to_model_input(volume, (8, 60, 80)).shape) == (3, 8, 60, 80)


def test_resample_isotropic(torch):
    from pacs_app.ai.preprocess import resample_isotropic

    volume = load_series(candidate(*files(CT5N)))  # spacing (2.5, 0.488, 0.488), 5 x 16 x 16
    array, spacing = resample_isotropic(volume, 1.0)
    assert spacing == pytest.approx((1.0, 1.0, 1.0))
    assert array.dtype == np.float32
    assert array.shape[0] in (10, 11) and array.shape[1:] in ((7, 7), (8, 8))
    assert volume.pixels.min() - 1e-3 <= array.min() and array.max() <= volume.pixels.max() + 1e-3

    single = load_series(candidate(TESTDATA / "clinical" / "CT_small.dcm"))  # 0.661 mm pixels
    array, spacing = resample_isotropic(single, 1.0)
    assert spacing == pytest.approx((5.0, 1.0, 1.0))
    assert array.shape[0] == 1 and array.shape[1:] in ((84, 84), (85, 85))
