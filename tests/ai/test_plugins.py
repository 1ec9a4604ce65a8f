"""The default analysis plugins on synthetic volumes with known answers, and on real files.

No database: every SeriesVolume is built here from numpy arrays (or read with pydicom).
"""

from __future__ import annotations

import io
import itertools
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pacs_app.ai.base import (
    Finding,
    Plugin,
    PluginResult,
    SeriesInfo,
    SeriesVolume,
    Severity,
    StudyContext,
)
from pacs_app.ai.plugins import (
    DEFAULT_PLUGINS,
    ChestRadiographLungFields,
    CTMeasurements,
    HeaderQC,
    ImageQC,
    SeriesQC,
    default_plugins,
    segment_lung_fields,
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
EXPLICIT_LE = "1.2.840.10008.1.2.1"
CLINICAL = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "dicom" / "clinical"
VR = {
    "00080008": "CS",
    "00080018": "UI",
    "00080060": "CS",
    "00180015": "CS",
    "00180050": "DS",
    "00181164": "DS",
    "00185101": "CS",
    "00181413": "DS",
    "00200020": "CS",
    "00200037": "DS",
    "00280030": "DS",
    "00282110": "CS",
    "00280301": "CS",
}


_SERIES_NUMBERS = itertools.count(1)

# --- helpers --------------------------------------------------------------------------------


def make_volume(
    pixels: np.ndarray,
    *,
    modality: str = "CT",
    spacing: tuple[float | None, float | None, float | None] = (2.5, 0.7, 0.7),
    positions: list | str | None = "auto",
    orientations: list | None = None,
    instance_numbers: list[int | None] | None = None,
    tags: dict[str, Any] | None = None,
    value_range: tuple[float, float] = (-1024.0, 3071.0),
    transfer_syntax: str = EXPLICIT_LE,
    body_part: str = "",
    description: str = "",
) -> SeriesVolume:
    """A series of one instance per frame; ``tags`` (8-hex-digit keys) override the default
    header of every instance (None removes a tag)."""
    pixels = np.asarray(pixels)
    frames = pixels.shape[0]
    uid = f"1.2.826.0.1.{next(_SERIES_NUMBERS)}"
    sops = [f"{uid}.{i + 1}" for i in range(frames)]
    if positions == "auto":
        positions = [(0.0, 0.0, (spacing[0] or 1.0) * i) for i in range(frames)]
    elif positions is None:
        positions = [None] * frames
    orientations = orientations or [AXIAL] * frames
    instance_numbers = instance_numbers or list(range(1, frames + 1))
    headers = []
    for i in range(frames):
        header: dict[str, Any] = {
            "00080018": sops[i],
            "00080060": modality,
            "00280030": list(spacing[1:]) if spacing[1] else None,
            "00180050": spacing[0],
            "00200037": list(orientations[i]) if orientations[i] else None,
        }
        header.update(tags or {})
        headers.append(
            {
                tag: {
                    "vr": VR.get(tag, "LO"),
                    "Value": value if isinstance(value, list) else [value],
                }
                for tag, value in header.items()
                if value is not None
            }
        )
    return SeriesVolume(
        series_uid=uid,
        modality=modality,
        body_part=body_part,
        description=description,
        pixels=pixels,
        spacing=spacing,
        positions=positions,
        orientations=list(orientations),
        instance_numbers=list(instance_numbers),
        frame_sources=[(sop, 0) for sop in sops],
        headers=headers,
        photometric="RGB" if pixels.ndim == 4 else "MONOCHROME2",
        slice_thickness=spacing[0],
        value_range=value_range,
        transfer_syntaxes=[transfer_syntax],
    )


def context(*series: SeriesVolume, modality: str = "", body_part: str = "", **kw) -> StudyContext:
    return StudyContext(
        study_id="TEST-1",
        modality=modality or (series[0].modality if series else ""),
        body_part=body_part,
        description=kw.pop("description", ""),
        series=list(series),
        **kw,
    )


def codes(result: PluginResult) -> dict[str, Finding]:
    return {f.code: f for f in result.findings}


def assert_well_formed(result: PluginResult) -> None:
    for f in result.findings:
        assert f.title and f.method and f.limitations, f
        assert isinstance(f.severity, Severity)
        assert f.series_uid is not None or f.code == "header.skipped_series"
        if f.value is not None:
            assert math.isfinite(f.value) and f.unit, f


def flat_ct(frames: int = 5, size: int = 64, value: float = 40.0) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (value + rng.normal(0, 5, (frames, size, size))).astype(np.float32)


# --- the registry ---------------------------------------------------------------------------


def test_default_plugins_follow_the_protocol():
    plugins = default_plugins()
    assert plugins is DEFAULT_PLUGINS
    assert [type(p) for p in plugins] == [
        HeaderQC,
        SeriesQC,
        ImageQC,
        CTMeasurements,
        ChestRadiographLungFields,
    ]
    for plugin in plugins:
        assert isinstance(plugin, Plugin)
        assert plugin.version == "1.0.0" and plugin.description
        assert plugin.kind in {"qc", "measurement", "segmentation"}


def test_plugins_import_no_heavy_or_web_modules():
    code = (
        "import sys, pacs_app.ai.plugins\n"
        "bad = {'torch', 'monai', 'reflex', 'fastapi', 'starlette', 'sqlmodel', 'sqlalchemy'}\n"
        "print(','.join(sorted(bad & {n.split('.')[0] for n in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- header QC ------------------------------------------------------------------------------


def test_header_qc_passes_a_clean_ct():
    result = HeaderQC().run(context(make_volume(flat_ct()), body_part="ABDOMEN"))
    assert list(codes(result)) == ["header.ok"]
    assert_well_formed(result)


def test_header_qc_flags_modality_and_body_part_mismatch():
    volume = make_volume(flat_ct(), body_part="CHEST")
    found = codes(HeaderQC().run(context(volume, modality="MR", body_part="head")))
    assert found["header.modality_mismatch"].severity is Severity.WARNING
    assert found["header.body_part_mismatch"].severity is Severity.WARNING
    # synonyms and compatible codes are not alarms
    found = codes(HeaderQC().run(context(volume, modality="PT\\CT", body_part="Thorax")))
    assert "header.modality_mismatch" not in found and "header.body_part_mismatch" not in found
    cr = make_volume(flat_ct(1), modality="CR", spacing=(None, 0.2, 0.2))
    found = codes(HeaderQC().run(context(cr, modality="DX")))
    assert found["header.modality_mismatch"].severity is Severity.INFO


def test_header_qc_flags_missing_and_invalid_spacing_and_geometry():
    volume = make_volume(flat_ct(), tags={"00280030": None, "00180050": None, "00200037": None})
    found = codes(HeaderQC().run(context(volume)))
    assert found["header.pixel_spacing_missing"].value == 5
    assert "header.slice_thickness_missing" in found
    assert "header.orientation_missing" in found
    cr = make_volume(flat_ct(1), modality="CR", tags={"00280030": [0, 0]})
    found = codes(HeaderQC().run(context(cr)))
    assert found["header.pixel_spacing_invalid"].severity is Severity.WARNING
    dx = make_volume(flat_ct(1), modality="DX", tags={"00280030": None, "00181164": [0.15, 0.15]})
    found = codes(HeaderQC().run(context(dx)))
    assert found["header.imager_pixel_spacing_only"].severity is Severity.INFO
    assert "header.pixel_spacing_missing" not in found
    mr = make_volume(flat_ct(), modality="MR", tags={"00280030": [80.0, 80.0]})
    assert "header.pixel_spacing_invalid" in codes(HeaderQC().run(context(mr)))


def test_header_qc_flags_lossy_compression_and_burned_in_annotation():
    jpeg = make_volume(flat_ct(), transfer_syntax="1.2.840.10008.1.2.4.50")
    found = codes(HeaderQC().run(context(jpeg)))["header.lossy_compression"]
    assert found.severity is Severity.WARNING and found.report_text
    flagged = make_volume(flat_ct(), tags={"00282110": "01", "00280301": "YES"})
    found = codes(HeaderQC().run(context(flagged)))
    assert "header.lossy_compression" in found
    assert found["header.burned_in_annotation"].value == 5
    # JPEG 2000 stated lossless: nothing; silent: "may be lossy", not for the report
    j2k = "1.2.840.10008.1.2.4.91"
    stated = make_volume(flat_ct(), transfer_syntax=j2k, tags={"00282110": "00"})
    assert "header.lossy_compression" not in codes(HeaderQC().run(context(stated)))
    silent = codes(HeaderQC().run(context(make_volume(flat_ct(), transfer_syntax=j2k))))
    assert silent["header.lossy_compression"].title.startswith("Images may be lossy")
    assert silent["header.lossy_compression"].report_text == ""


def test_header_qc_lists_skipped_series():
    skipped = [SeriesInfo(series_uid="1.2.3", modality="SR", description="Dose", instances=1)]
    ctx = context(make_volume(flat_ct()), skipped_series=skipped)
    found = codes(HeaderQC().run(ctx))["header.skipped_series"]
    assert found.severity is Severity.INFO and found.report_text == ""


# --- series QC ------------------------------------------------------------------------------


def _zs(volume_z: list[float]) -> list[tuple[float, float, float]]:
    return [(0.0, 0.0, z) for z in volume_z]


def test_series_qc_reports_the_median_spacing_of_a_regular_stack():
    result = SeriesQC().run(context(make_volume(flat_ct(10), spacing=(1.25, 0.7, 0.7))))
    assert list(codes(result)) == ["series.slice_spacing"]
    assert codes(result)["series.slice_spacing"].value == pytest.approx(1.25)
    assert_well_formed(result)


def test_series_qc_projects_on_the_slice_normal():
    # coronal slices stepping 3 mm along y (with a drift in x that is in-plane)
    positions = [(0.1 * i, -3.0 * i, 5.0) for i in range(6)]
    volume = make_volume(flat_ct(6), positions=positions, orientations=[CORONAL] * 6)
    found = codes(SeriesQC().run(context(volume)))
    assert found["series.slice_spacing"].value == pytest.approx(3.0)
    assert "series.irregular_spacing" not in found


def test_series_qc_finds_a_duplicate_and_a_gap():
    volume = make_volume(flat_ct(8), positions=_zs([0, 2.5, 5, 5, 7.5, 12.5, 15, 17.5]))
    found = codes(SeriesQC().run(context(volume)))
    assert found["series.duplicate_positions"].value == 1
    assert found["series.slice_gap"].value == pytest.approx(5.0)
    assert found["series.slice_spacing"].value == pytest.approx(2.5)
    assert found["series.slice_gap"].evidence["gaps_between_frames"] == [[4, 5]]


def test_series_qc_finds_irregular_spacing():
    volume = make_volume(flat_ct(6), positions=_zs([0, 2.5, 5, 6.5, 9, 11.5]))
    found = codes(SeriesQC().run(context(volume)))
    assert "series.irregular_spacing" in found and "series.slice_gap" not in found


def test_series_qc_finds_missing_instance_numbers_and_mixed_orientation():
    volume = make_volume(flat_ct(5), instance_numbers=[1, 2, 3, 5, 6])
    found = codes(SeriesQC().run(context(volume)))
    assert found["series.instance_numbers_missing"].evidence["missing"] == [4]
    mixed = make_volume(flat_ct(4), orientations=[AXIAL, AXIAL, CORONAL, AXIAL])
    found = codes(SeriesQC().run(context(mixed)))
    assert found["series.mixed_orientation"].evidence["frames"] == [2]
    assert "series.slice_spacing" not in found  # not one stack


def test_series_qc_handles_single_frames_and_missing_positions():
    assert not SeriesQC().applies(context(make_volume(flat_ct(1))))
    no_positions = make_volume(flat_ct(4), positions=None)
    found = codes(SeriesQC().run(context(no_positions)))
    assert found["series.positions_missing"].severity is Severity.WARNING
    cine = make_volume(flat_ct(4), modality="US", positions=None, spacing=(None, 0.2, 0.2))
    assert SeriesQC().run(context(cine)).findings == []


# --- image QC -------------------------------------------------------------------------------


def test_image_qc_passes_a_clean_ct():
    found = codes(ImageQC().run(context(make_volume(flat_ct()))))
    assert found["image.saturation"].severity is Severity.INFO
    assert found["image.blank_frames"].severity is Severity.INFO
    assert "image.exposure" not in found


def test_image_qc_flags_saturation():
    rng = np.random.default_rng(2)
    image = rng.uniform(500, 3000, (1, 200, 200)).astype(np.float32)
    image[0, 50:90, 50:150] = 4095  # 10 % at the top of a 12-bit range, inside the field
    dx = make_volume(image, modality="DX", spacing=(None, 0.15, 0.15), value_range=(0, 4095))
    found = codes(ImageQC().run(context(dx)))["image.saturation"]
    assert found.severity is Severity.WARNING
    assert found.value == pytest.approx(10.0, abs=0.01)
    # the same at the image edge is a collimation/shutter area, not saturation
    image[0, 50:90, 50:150] = 1000
    image[0, :, :30] = image[0, :, -30:] = 4095
    found = codes(ImageQC().run(context(dx)))["image.saturation"]
    assert found.severity is Severity.INFO and found.value == 0
    assert found.evidence["shutter_fraction"] == pytest.approx(0.3)
    # in CT, an edge region at the top value is not collimation
    ct = make_volume(image, value_range=(0, 4095))
    assert codes(ImageQC().run(context(ct)))["image.saturation"].severity is Severity.WARNING


def test_image_qc_flags_blank_frames():
    pixels = flat_ct(6)
    pixels[[2, 5]] = -1024.0
    found = codes(ImageQC().run(context(make_volume(pixels))))["image.blank_frames"]
    assert found.severity is Severity.WARNING and found.value == 2
    assert found.evidence["frames"] == [2, 5]
    colour = np.zeros((3, 32, 32, 3), dtype=np.uint8)
    colour[0] = np.random.default_rng(3).integers(0, 255, (32, 32, 3))
    us = make_volume(colour, modality="US", positions=None, spacing=(None, 0.3, 0.3))
    found = codes(ImageQC().run(context(us)))
    assert list(found) == ["image.blank_frames"] and found["image.blank_frames"].value == 2


def test_image_qc_gives_exposure_numbers_and_flags_a_dark_radiograph():
    rng = np.random.default_rng(4)
    image = rng.uniform(0.2 * 4095, 0.6 * 4095, (1, 400, 400)).astype(np.float32)
    cr = make_volume(image, modality="CR", spacing=(None, 0.2, 0.2), value_range=(0, 4095))
    found = codes(ImageQC().run(context(cr)))["image.exposure"]
    assert found.severity is Severity.INFO
    assert found.evidence["mean"] == pytest.approx(0.4, abs=0.01)
    assert found.evidence["p1"] == pytest.approx(0.204, abs=0.01)
    assert found.evidence["p99"] == pytest.approx(0.596, abs=0.01)
    dark = make_volume(image * 0.2, modality="CR", spacing=(None, 0.2, 0.2), value_range=(0, 4095))
    found = codes(ImageQC().run(context(dark)))["image.exposure"]
    assert found.severity is Severity.WARNING and "overexposure" in found.title
    di = make_volume(image, modality="DX", spacing=(None, 0.2, 0.2), value_range=(0, 4095))
    di.headers[0]["00181413"] = {"vr": "DS", "Value": [4.5]}
    assert codes(ImageQC().run(context(di)))["image.deviation_index"].severity is Severity.WARNING


def test_image_qc_reads_big_frames_with_a_stride():
    big = np.zeros((1, 2048, 2048), dtype=np.float32)
    big[0, ::2, ::2] = 1000.0
    found = codes(ImageQC().run(context(make_volume(big, modality="MR"))))["image.saturation"]
    assert "one pixel in 3 along rows and columns" in found.method


# --- CT measurements ------------------------------------------------------------------------

SIZE, PIXEL, SLICE, FRAMES = 512, 0.7, 2.5, 20
R_WATER, R_FAT, R_BONE, BONE_X = 100.0, 120.0, 15.0, 40.0  # mm


def phantom(air: float = -1000.0, metal: bool = False, fill_fov: bool = False) -> np.ndarray:
    """Water cylinder (0 HU) in a fat ring (-100 HU) with a bone rod (700 HU), in air,
    padding -2048 outside a circular field of view; 0.7 x 0.7 mm pixels, 20 slices."""
    centre = (SIZE - 1) / 2
    y, x = np.ogrid[:SIZE, :SIZE]
    r = np.hypot(y - centre, x - centre) * PIXEL
    r_bone = np.hypot(y - centre, x - centre - BONE_X / PIXEL) * PIXEL
    plane = np.full((SIZE, SIZE), air, dtype=np.float32)
    plane[r <= R_FAT] = -100.0
    plane[r <= R_WATER] = 0.0
    plane[r_bone <= R_BONE] = 700.0
    if fill_fov:
        plane[:] = 0.0
    plane[r > centre * PIXEL] = -2048.0
    volume = np.repeat(plane[None], FRAMES, axis=0)
    if metal:
        rod = np.hypot(y - centre + 50, x - centre) * PIXEL <= 3.0
        volume[5:10][:, rod] = 3000.0
    noise = np.random.default_rng(5).normal(0, 10, volume.shape).astype(np.float32)
    return np.where(volume > -2048, volume + noise, volume)


def analytic_ml(area_mm2: float) -> float:
    return area_mm2 * SLICE * FRAMES / 1000.0


def test_ct_measure_on_the_phantom():
    volume = make_volume(phantom(), spacing=(SLICE, PIXEL, PIXEL))
    result = CTMeasurements().run(context(volume))
    assert result.warnings == []
    found = codes(result)
    air = found["ct.hu_air_calibration"]
    assert air.severity is Severity.INFO and air.unit == "HU"
    assert air.value == pytest.approx(-1000, abs=5)
    fat = analytic_ml(math.pi * (R_FAT**2 - R_WATER**2))
    soft = analytic_ml(math.pi * (R_WATER**2 - R_BONE**2))
    bone = analytic_ml(math.pi * R_BONE**2)
    assert found["ct.fat_volume"].value == pytest.approx(fat, rel=0.10)
    assert found["ct.soft_tissue_volume"].value == pytest.approx(soft, rel=0.10)
    assert found["ct.bone_volume"].value == pytest.approx(bone, rel=0.10)
    assert found["ct.fat_volume"].unit == "mL"
    body = found["ct.body_volume"]
    assert body.value == pytest.approx(analytic_ml(math.pi * R_FAT**2), rel=0.05)
    assert body.report_text.startswith("Automated HU-threshold measurement")
    assert "ct.metal" not in found
    assert_well_formed(result)


def test_ct_measure_flags_air_off_calibration():
    volume = make_volume(phantom(air=-900.0), spacing=(SLICE, PIXEL, PIXEL))
    found = codes(CTMeasurements().run(context(volume)))["ct.hu_air_calibration"]
    assert found.severity is Severity.WARNING and "HU calibration may be off" in found.title
    assert found.value == pytest.approx(-900, abs=5)


def test_ct_measure_flags_metal():
    volume = make_volume(phantom(metal=True), spacing=(SLICE, PIXEL, PIXEL))
    found = codes(CTMeasurements().run(context(volume)))
    metal = found["ct.metal"]
    assert metal.severity is Severity.WARNING and "streak artefacts" in metal.title
    assert metal.evidence["slices"] == [5, 6, 7, 8, 9]
    assert metal.value == pytest.approx(math.pi * 9 * SLICE * 5 / 1000, rel=0.25)
    assert metal.report_text
    # the metal is not counted as bone
    bone = analytic_ml(math.pi * R_BONE**2)
    assert found["ct.bone_volume"].value == pytest.approx(bone, rel=0.10)


def test_ct_measure_cannot_check_air_when_the_body_fills_the_field_of_view():
    volume = make_volume(phantom(fill_fov=True), spacing=(SLICE, PIXEL, PIXEL))
    result = CTMeasurements().run(context(volume))
    assert "ct.hu_air_calibration" not in codes(result)
    assert any("could not be checked" in w for w in result.warnings)


def test_ct_measure_without_spacing_gives_percentages_and_skips_localizers():
    pixels = phantom()[:4]
    volume = make_volume(pixels, spacing=(None, None, None), positions=None)
    volume.slice_thickness = None
    found = codes(CTMeasurements().run(context(volume)))
    assert found["ct.fat_volume"].unit == "%"
    assert "unknown" in found["ct.fat_volume"].limitations
    scout = make_volume(flat_ct(1), tags={"00080008": ["ORIGINAL", "PRIMARY", "LOCALIZER"]})
    assert not CTMeasurements().applies(context(scout))
    axial = make_volume(phantom()[:3], spacing=(SLICE, PIXEL, PIXEL))
    found = codes(CTMeasurements().run(context(scout, axial)))
    assert found["ct.body_volume"].series_uid == axial.series_uid


# --- chest radiograph lung fields -----------------------------------------------------------

CXR = 1024
CXR_SPACING = 0.35  # mm; 0.7 mm after downsampling to 512
RIGHT_LUNG = (480, 330, 300, 120)  # centre row, centre column, semi-axis rows, semi-axis columns
LEFT_LUNG = (500, 700, 280, 105)


def _ellipse(rows: int, shape: tuple[int, int], centre_row, centre_col, a, b) -> np.ndarray:
    y, x = np.ogrid[: shape[0], : shape[1]]
    return ((y - centre_row) / a) ** 2 + ((x - centre_col) / b) ** 2 <= 1


def chest(lungs=(RIGHT_LUNG, LEFT_LUNG), body=(520, 512, 470, 440)) -> np.ndarray:
    """Dark background, a bright body ellipse, darker lung ellipses, noise."""
    shape = (CXR, CXR)
    image = np.full(shape, 0.05, dtype=np.float32)
    image[_ellipse(CXR, shape, *body)] = 0.75
    for lung in lungs:
        image[_ellipse(CXR, shape, *lung)] = 0.30
    image += np.random.default_rng(6).normal(0, 0.03, shape).astype(np.float32)
    return image * 4000


def area_cm2(lung) -> float:
    return math.pi * lung[2] * lung[3] * CXR_SPACING**2 / 100


def test_segment_lung_fields_measures_known_areas():
    fields = segment_lung_fields(chest(), (CXR_SPACING, CXR_SPACING))
    assert fields.ok, fields.reason
    assert fields.scale == 2 and fields.area_unit == "cm2"
    assert fields.right_area == pytest.approx(area_cm2(RIGHT_LUNG), rel=0.15)
    assert fields.left_area == pytest.approx(area_cm2(LEFT_LUNG), rel=0.15)
    truth = area_cm2(LEFT_LUNG) / area_cm2(RIGHT_LUNG)
    assert fields.ratio == pytest.approx(truth, rel=0.05)
    assert not fields.apex_cut and not fields.base_cut
    # outer edges at columns 210 and 805: midpoint 507.5 against a centre of 511.5
    assert fields.offset_mm == pytest.approx(-4 * CXR_SPACING, abs=3)


def test_lung_field_plugin_reports_and_saves_an_overlay():
    saved: dict[str, bytes] = {}

    def save(name: str, data: bytes, media_type: str) -> str:
        assert media_type == "image/png"
        saved[name] = data
        return f"evidence/{name}"

    cr = make_volume(
        chest()[None],
        modality="CR",
        spacing=(None, CXR_SPACING, CXR_SPACING),
        value_range=(0, 4095),
        tags={"00200020": ["L", "F"], "00185101": "PA"},
        body_part="CHEST",
    )
    ctx = context(cr, save_evidence=save)
    plugin = ChestRadiographLungFields()
    assert plugin.applies(ctx)
    result = plugin.run(ctx)
    found = codes(result)
    assert result.warnings == []
    assert found["cxr.lung_field_area_right"].unit == "cm2"
    assert found["cxr.lung_field_symmetry"].severity is Severity.INFO
    assert found["cxr.centring"].severity is Severity.INFO
    assert found["cxr.coverage"].severity is Severity.INFO
    assert found["cxr.lung_field_area_left"].evidence["overlay"] == "evidence/lung_fields.png"
    overlay = Image.open(io.BytesIO(saved["lung_fields.png"]))
    assert overlay.size == (512, 512) and overlay.mode == "RGB"
    colours = np.asarray(overlay).reshape(-1, 3)
    assert ((colours == (0, 220, 0)).all(axis=1)).any()  # left field outline
    assert ((colours == (40, 120, 255)).all(axis=1)).any()  # right field outline
    assert_well_formed(result)


def test_lung_field_plugin_warns_when_one_lung_is_missing():
    cr = make_volume(
        chest(lungs=(RIGHT_LUNG,))[None],
        modality="DX",
        spacing=(None, 0.35, 0.35),
        body_part="CHEST",
        value_range=(0, 4095),
    )
    result = ChestRadiographLungFields().run(context(cr))
    assert result.findings == []
    assert any("lung fields could not be segmented" in w for w in result.warnings)


def test_lung_field_plugin_flags_asymmetry_and_cut_off_apices():
    small_left = (500, 700, 280, 40)
    cr = make_volume(
        chest(lungs=(RIGHT_LUNG, small_left))[None],
        modality="CR",
        spacing=(None, 0.35, 0.35),
        description="PA chest",
        value_range=(0, 4095),
    )
    found = codes(ChestRadiographLungFields().run(context(cr)))
    symmetry = found["cxr.lung_field_symmetry"]
    assert symmetry.severity is Severity.WARNING and symmetry.value < 0.6
    assert "rotation or positioning" in symmetry.report_text
    high = chest(lungs=((250, 330, 300, 120), (250, 700, 300, 110)), body=(300, 512, 600, 440))
    cr = make_volume(high[None], modality="CR", spacing=(None, 0.35, 0.35), body_part="THORAX")
    coverage = codes(ChestRadiographLungFields().run(context(cr)))["cxr.coverage"]
    assert coverage.severity is Severity.WARNING and "apices" in coverage.title


def test_lung_field_plugin_applies_to_frontal_chest_radiographs_only():
    plugin = ChestRadiographLungFields()
    image = chest()[None]
    knee = make_volume(image, modality="CR", body_part="KNEE", spacing=(None, 0.2, 0.2))
    lateral = make_volume(image, modality="DX", body_part="CHEST", tags={"00185101": "LL"})
    ct = make_volume(image, modality="CT", body_part="CHEST")
    assert not plugin.applies(context(knee))
    assert not plugin.applies(context(lateral))
    assert not plugin.applies(context(ct))
    assert plugin.applies(context(knee, body_part="chest"))


def test_segment_lung_fields_without_spacing_gives_pixels():
    fields = segment_lung_fields(chest(), None)
    assert fields.ok and fields.area_unit == "px" and fields.offset_mm is None
    truth_px = math.pi * RIGHT_LUNG[2] * RIGHT_LUNG[3] / 4  # on the 2x downsampled grid
    assert fields.right_area == pytest.approx(truth_px, rel=0.15)


# --- real files -----------------------------------------------------------------------------


def load_dicom(path: Path) -> SeriesVolume:
    """Read one file the way the pipeline's loader does (rescale, MONOCHROME1 inverted)."""
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(path)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    pixels = ds.pixel_array.astype(np.float32) * slope + intercept
    bits, signed = int(ds.BitsStored), int(ds.PixelRepresentation) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    low, high = low * slope + intercept, high * slope + intercept
    if ds.PhotometricInterpretation == "MONOCHROME1":
        pixels = low + high - pixels
    header = ds.to_json_dict(bulk_data_threshold=4096, bulk_data_element_handler=lambda _e: "")
    header.pop("7FE00010", None)
    spacing = [float(v) for v in ds.get("PixelSpacing", [])] or [0.0, 0.0]
    position = ds.get("ImagePositionPatient")
    orientation = ds.get("ImageOrientationPatient")
    return SeriesVolume(
        series_uid=str(ds.SeriesInstanceUID),
        modality=str(ds.Modality),
        body_part=str(ds.get("BodyPartExamined", "") or ""),
        description=str(ds.get("SeriesDescription", "") or ""),
        pixels=pixels[None],
        spacing=(None, spacing[0] or None, spacing[1] or None),
        positions=[tuple(float(v) for v in position) if position else None],
        orientations=[tuple(float(v) for v in orientation) if orientation else None],
        instance_numbers=[int(ds.get("InstanceNumber") or 1)],
        frame_sources=[(str(ds.SOPInstanceUID), 0)],
        headers=[header],
        photometric=str(ds.PhotometricInterpretation),
        slice_thickness=float(ds.SliceThickness) if ds.get("SliceThickness") else None,
        value_range=(float(low), float(high)),
        transfer_syntaxes=[str(ds.file_meta.TransferSyntaxUID)],
    )


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "CR_chest_RG1_J2KI.dcm", "DX_thorax_highdicom.dcm"]
)
def test_every_default_plugin_runs_on_real_files(name):
    path = CLINICAL / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared DICOM test data is not checked out)")
    volume = load_dicom(path)
    saved: list[str] = []
    ctx = context(
        volume,
        body_part=volume.body_part,
        save_evidence=lambda n, _d, _m: saved.append(n) or f"evidence/{n}",
    )
    ran = 0
    for plugin in default_plugins():
        if not plugin.applies(ctx):
            continue
        ran += 1
        result = plugin.run(ctx)
        assert result.findings or result.warnings, plugin.name
        assert_well_formed(result)
    assert ran >= 3  # header, image and a modality-specific plugin at least


def test_real_chest_radiograph_gives_two_lung_fields():
    path = CLINICAL / "CR_chest_RG1_J2KI.dcm"
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared DICOM test data is not checked out)")
    volume = load_dicom(path)
    found = codes(ChestRadiographLungFields().run(context(volume)))
    # the file's Pixel Spacing is 0\0: areas in pixels, said so
    assert found["cxr.lung_field_area_right"].unit == "px"
    assert 0.6 < found["cxr.lung_field_symmetry"].value < 1.67
    header = codes(HeaderQC().run(context(volume)))
    assert "header.pixel_spacing_invalid" in header and "header.lossy_compression" in header
