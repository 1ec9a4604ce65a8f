"""CT measurements: HU calibration from air, tissue composition by HU range, metal.

Works on one CT series (the one with most frames, localizers skipped). The body is, per slice,
the largest connected region above -500 HU with its holes filled. Air outside the body checks
the HU calibration; voxels inside the body are counted by fixed HU ranges; voxels above 2500 HU
anywhere in the field of view count as metal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pacs_app.ai.base import Finding, PluginResult, SeriesVolume, Severity, StudyContext
from pacs_app.ai.plugins._common import (
    fmt,
    grey_rgb,
    key_image,
    png_bytes,
    tag_floats,
    tag_values,
)

BODY_HU = -500.0  # body / objects: above this
PADDING_BELOW_HU = -1500.0  # no real air reads this low: padding (-2000, -2048, -3024 ...)
AIR_EXPECTED_HU = -1000.0
AIR_TOLERANCE_HU = 50.0
AIR_MIN_PIXELS = 500
# Objects covering more than this fraction of the field-of-view edge: the body is cut by the
# field of view, and what lies outside it need not be air (e.g. lung in a small-FOV recon).
FOV_EDGE_COVERED = 0.25
AIR_SAMPLE_SLICES = 20
AIR_OBJECT_MARGIN_MM = 5.0  # air this close to an object is partial-volume, left out
FAT_HU = (-190.0, -30.0)
SOFT_HU = (-30.0, 150.0)  # (-30, 150]: -29 .. 150 for integer HU
BONE_HU = 300.0
METAL_HU = 2500.0
METAL_MIN_VOXELS = 20

# Structuring elements that connect within a slice only, so 3D calls work slice by slice.
IN_PLANE_4 = np.zeros((3, 3, 3), dtype=bool)
IN_PLANE_4[1] = ndimage.generate_binary_structure(2, 1)

TISSUE_METHOD = (
    "Body mask: per slice, the largest 4-connected region above -500 HU with holes filled "
    "(scipy.ndimage). Voxels inside it counted by HU: fat -190 to -30, soft tissue -29 to 150 "
    "(values between -30 and -29 count as soft tissue), bone 301 to 2500 (above 2500 is metal); "
    "volume = count x row spacing x column spacing x slice spacing (the spacing between slice "
    "positions, else the slice thickness)."
)
TISSUE_LIMITS = (
    "Threshold classes, not anatomy: contrast-enhanced vessels and organs can exceed 150 HU, "
    "partial volume and beam hardening shift values, and only the scanned range and field of "
    "view are counted. "
    "Not a body-composition standard (no vertebral-level normalisation)."
)


def is_localizer(volume: SeriesVolume) -> bool:
    """ImageType contains LOCALIZER, or the description names a scout/topogram."""
    for header in volume.headers[:1]:
        image_type = [str(v).upper() for v in tag_values(header, "00080008") or []]
        if "LOCALIZER" in image_type:
            return True
    words = volume.description.upper()
    return any(w in words for w in ("SCOUT", "TOPOGRAM", "LOCALIZER", "SURVIEW", "SCANOGRAM"))


def choose_series(context: StudyContext) -> SeriesVolume | None:
    """The CT series to measure: most frames, localizers and colour skipped; a single frame
    only when no volume exists."""
    candidates = [
        v
        for v in context.series
        if v.modality.upper() == "CT" and v.frames >= 1 and not v.is_color and not is_localizer(v)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda v: v.frames)


def padding_mask(volume: SeriesVolume, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    """Voxels that are padding, not air, and how they were recognised."""
    pad = pixels < PADDING_BELOW_HU
    how = [f"values below {PADDING_BELOW_HU:g} HU"]
    header = volume.headers[0] if volume.headers else {}
    stored = tag_floats(header, "00280120")  # Pixel Padding Value (stored units)
    if stored:
        slope = (tag_floats(header, "00281053") or [1.0])[0]
        intercept = (tag_floats(header, "00281052") or [0.0])[0]
        value = stored[0] * slope + intercept
        pad |= np.abs(pixels - value) < 0.5
        how.append(f"the Pixel Padding Value ({fmt(value, 0)} HU)")
    middle = pixels[pixels.shape[0] // 2]
    minimum = float(middle.min())
    corners = middle[[0, 0, -1, -1], [0, -1, 0, -1]]
    if minimum <= -1000 and np.all(corners == minimum):
        pad |= pixels == minimum
        how.append(f"the minimum {fmt(minimum, 0)} HU, which fills the image corners")
    return pad, ", ".join(how)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """2D hole filling: everything not connected to the image edge through the background.
    (Labelling the background is several times faster than ndimage.binary_fill_holes.)"""
    background, _ = ndimage.label(~mask)
    edge = np.unique(np.r_[background[0], background[-1], background[:, 0], background[:, -1]])
    keep = np.ones(int(background.max()) + 1, dtype=bool)
    keep[edge] = False
    keep[0] = True  # label 0 is the mask itself
    return keep[background]


def body_mask(pixels: np.ndarray) -> np.ndarray:
    """Per slice: the largest 4-connected region above -500 HU, holes filled."""
    body = np.zeros(pixels.shape, dtype=bool)
    for k in range(pixels.shape[0]):
        labels, count = ndimage.label(pixels[k] > BODY_HU)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        body[k] = fill_holes(labels == int(np.argmax(sizes)))
    return body


@dataclass
class AirCheck:
    pixels: int
    reason: str = ""  # why it could not be measured
    median: float = math.nan
    q1: float = math.nan
    q3: float = math.nan
    slices: tuple[int, ...] = ()


def air_check(pixels: np.ndarray, pad: np.ndarray, row_mm: float | None) -> AirCheck:
    """HU of air outside every object, away from the image border and the padding."""
    frames, rows, columns = pixels.shape
    picked = np.unique(np.linspace(0, frames - 1, min(frames, AIR_SAMPLE_SLICES)).round())
    picked = picked.astype(int)
    sample = pixels[picked]
    sample_pad = pad[picked]
    objects = np.stack([fill_holes(plane > BODY_HU) for plane in sample])
    in_fov = ~sample_pad
    fov_edge = in_fov & ~ndimage.binary_erosion(in_fov, structure=IN_PLANE_4, border_value=0)
    covered = float((fov_edge & objects).sum()) / max(1, int(fov_edge.sum()))
    if covered > FOV_EDGE_COVERED:
        return AirCheck(
            pixels=0,
            reason=(
                f"objects above {BODY_HU:g} HU cover {covered:.0%} of the field-of-view edge "
                f"(more than {FOV_EDGE_COVERED:.0%}): the body is cut by the field of view, so "
                "what lies outside it may not be air"
            ),
        )
    margin = math.ceil(AIR_OBJECT_MARGIN_MM / row_mm) if row_mm else 5
    border = max(4, round(0.03 * min(rows, columns)))
    width = 2 * max(margin, border) + 1
    near = ndimage.maximum_filter((objects | sample_pad).view(np.uint8), size=(1, width, width))
    near = near.astype(bool)
    inside = np.zeros((rows, columns), dtype=bool)
    inside[border:-border, border:-border] = True
    air = ~near & inside[None]
    values = sample[air]
    if values.size < AIR_MIN_PIXELS:
        return AirCheck(
            pixels=int(values.size),
            reason=(
                f"only {values.size} air pixels outside the body (at least {AIR_MIN_PIXELS} "
                "needed; the body or padding fills the field of view)"
            ),
        )
    q1, median, q3 = (float(v) for v in np.percentile(values, [25, 50, 75]))
    used = tuple(int(picked[i]) for i in np.flatnonzero(air.any(axis=(1, 2))))
    return AirCheck(pixels=int(values.size), median=median, q1=q1, q3=q3, slices=used)


class CTMeasurements:
    name = "ct_measure"
    version = "1.0.0"
    kind = "measurement"
    description = (
        "CT: checks the HU calibration on air outside the body, measures fat, soft tissue and "
        "bone inside the body outline by HU ranges, and detects metal."
    )

    def applies(self, context: StudyContext) -> bool:
        return choose_series(context) is not None

    def run(self, context: StudyContext) -> PluginResult:
        result = PluginResult()
        volume = choose_series(context)
        if volume is None:
            return result
        pixels = volume.pixels
        if pixels.dtype != np.float32:
            pixels = pixels.astype(np.float32)
        pad, pad_how = padding_mask(volume, pixels)
        body = body_mask(pixels)

        middle = volume.frames // 2
        result.findings.extend(self._air(volume, pixels, pad, pad_how, result))
        result.findings.extend(self._composition(context, volume, pixels, body, middle))
        result.findings.extend(self._metal(volume, pixels, pad))
        return result

    # --- (a) HU calibration -------------------------------------------------------------------

    def _air(
        self,
        volume: SeriesVolume,
        pixels: np.ndarray,
        pad: np.ndarray,
        pad_how: str,
        result: PluginResult,
    ) -> list[Finding]:
        check = air_check(pixels, pad, volume.spacing[1])
        if check.reason:
            result.warnings.append(f"HU calibration could not be checked: {check.reason}.")
            return []
        off = abs(check.median - AIR_EXPECTED_HU) > AIR_TOLERANCE_HU
        iqr = f"IQR {fmt(check.q1, 0)} to {fmt(check.q3, 0)} HU"
        title = (
            f"HU calibration may be off: air outside the body measures {fmt(check.median, 0)} HU "
            f"({iqr}; expected {fmt(AIR_EXPECTED_HU, 0)} +/- {fmt(AIR_TOLERANCE_HU, 0)} HU)"
            if off
            else f"HU calibration plausible: air outside the body {fmt(check.median, 0)} HU ({iqr})"
        )
        key = check.slices[len(check.slices) // 2] if check.slices else 0
        return [
            Finding(
                code="ct.hu_air_calibration",
                title=title,
                severity=Severity.WARNING if off else Severity.INFO,
                method=(
                    f"Median and interquartile range of air pixels on up to {AIR_SAMPLE_SLICES} "
                    "evenly spaced slices. Air = outside every object above -500 HU (holes "
                    f"filled) by at least {fmt(AIR_OBJECT_MARGIN_MM, 0)} mm, at least 3 % of the "
                    f"image size away from the border, and not padding ({pad_how}); not checked "
                    f"when objects cover > {FOV_EDGE_COVERED:.0%} of the field-of-view edge. "
                    "Expected "
                    f"{fmt(AIR_EXPECTED_HU, 0)} +/- {fmt(AIR_TOLERANCE_HU, 0)} HU."
                ),
                limitations=(
                    "Checks one point of the HU scale (air) only: a water or bone calibration "
                    "error is not seen. Blankets, cushions or a bore artefact in the air region "
                    "shift the value; it is not a substitute for the scanner's daily QC."
                ),
                value=check.median,
                unit="HU",
                value_text=f"{iqr}; {check.pixels} pixels",
                series_uid=volume.series_uid,
                evidence={
                    "key_image": key_image(volume, key),
                    "iqr_hu": [round(check.q1, 1), round(check.q3, 1)],
                    "pixels": check.pixels,
                    "slices": list(check.slices),
                },
            )
        ]

    # --- (b) tissue composition ---------------------------------------------------------------

    def _composition(
        self,
        context: StudyContext,
        volume: SeriesVolume,
        pixels: np.ndarray,
        body: np.ndarray,
        middle: int,
    ) -> list[Finding]:
        values = pixels[body]
        if values.size == 0:
            return []
        counts = {
            "fat": int(np.count_nonzero((values >= FAT_HU[0]) & (values <= FAT_HU[1]))),
            "soft tissue": int(np.count_nonzero((values > SOFT_HU[0]) & (values <= SOFT_HU[1]))),
            "bone": int(np.count_nonzero((values > BONE_HU) & (values <= METAL_HU))),
        }
        total = int(values.size)
        dz = volume.spacing[0] if volume.frames > 1 else None
        dz_source = "slice spacing"
        if not dz:
            dz, dz_source = volume.slice_thickness, "slice thickness"
        dy, dx = volume.spacing[1], volume.spacing[2]
        voxel_ml = dz * dy * dx / 1000.0 if dz and dy and dx else None
        why = ""
        if voxel_ml is None:
            missing = [
                name
                for name, v in (
                    ("slice spacing/thickness", dz),
                    ("row spacing", dy),
                    ("column spacing", dx),
                )
                if not v
            ]
            why = f"Volumes not given: {', '.join(missing)} unknown; percentages of the body only."
        overlay_key = self._overlay(context, volume, pixels[middle], body[middle])
        evidence_base = {"key_image": key_image(volume, middle)}
        if overlay_key:
            evidence_base["overlay"] = overlay_key
        span_mm = volume.frames * dz if dz else None
        extent = (
            f"{volume.frames} slice(s), {fmt(span_mm, 0)} mm"
            if span_mm
            else f"{volume.frames} slice(s)"
        )
        found = []
        if voxel_ml is not None:
            body_ml = total * voxel_ml
            parts = ", ".join(
                f"{name} {fmt(count * voxel_ml, 0)} mL ({fmt(100 * count / total, 0)} %)"
                for name, count in counts.items()
            )
            found.append(
                Finding(
                    code="ct.body_volume",
                    title=f"Body volume in the scanned range {fmt(body_ml, 0)} mL ({extent})",
                    severity=Severity.INFO,
                    method=TISSUE_METHOD + f" Slice direction from the {dz_source}.",
                    limitations=TISSUE_LIMITS,
                    value=body_ml,
                    unit="mL",
                    series_uid=volume.series_uid,
                    evidence=dict(evidence_base, voxel_ml=voxel_ml, voxels=total),
                    report_text=(
                        f"Automated HU-threshold measurement over the scanned range ({extent}): "
                        f"body volume {fmt(body_ml, 0)} mL, of which {parts}."
                    ),
                )
            )
        else:
            found.append(
                Finding(
                    code="ct.body_volume",
                    title=f"Body outline measured in voxels only ({total} voxels, {extent})",
                    severity=Severity.INFO,
                    method=TISSUE_METHOD,
                    limitations=TISSUE_LIMITS + " " + why,
                    value=float(total),
                    unit="voxels",
                    series_uid=volume.series_uid,
                    evidence=dict(evidence_base, voxels=total),
                )
            )
        codes = {
            "fat": "ct.fat_volume",
            "soft tissue": "ct.soft_tissue_volume",
            "bone": "ct.bone_volume",
        }
        ranges = {"fat": "-190..-30 HU", "soft tissue": "-29..150 HU", "bone": "301..2500 HU"}
        for name, count in counts.items():
            share = 100 * count / total
            if voxel_ml is not None:
                title = (
                    f"{name.capitalize()} ({ranges[name]}): {fmt(count * voxel_ml, 1)} mL, "
                    f"{fmt(share, 1)} % of the body"
                )
                value, unit = count * voxel_ml, "mL"
            else:
                title = f"{name.capitalize()} ({ranges[name]}): {fmt(share, 1)} % of the body"
                value, unit = share, "%"
            found.append(
                Finding(
                    code=codes[name],
                    title=title,
                    severity=Severity.INFO,
                    method=TISSUE_METHOD,
                    limitations=TISSUE_LIMITS + (" " + why if why else ""),
                    value=value,
                    unit=unit,
                    value_text=f"{fmt(share, 1)} % of the body voxels ({count} voxels)",
                    series_uid=volume.series_uid,
                    evidence=dict(evidence_base, voxels=count, percent=round(share, 2)),
                )
            )
        return found

    def _overlay(
        self, context: StudyContext, volume: SeriesVolume, image: np.ndarray, body: np.ndarray
    ) -> str | None:
        """Middle slice (window -160..240 HU) with the body outline and tissue classes."""
        if context.save_evidence is None:
            return None
        rgb = grey_rgb(image, -160.0, 240.0).astype(np.float32)
        tint = {
            (255, 220, 0): body & (image >= FAT_HU[0]) & (image <= FAT_HU[1]),
            (255, 60, 60): body & (image > BONE_HU) & (image <= METAL_HU),
            (255, 0, 255): image > METAL_HU,
        }
        for colour, mask in tint.items():
            rgb[mask] = 0.6 * rgb[mask] + 0.4 * np.asarray(colour, dtype=np.float32)
        edge = body & ~ndimage.binary_erosion(body)
        rgb[edge] = (0, 255, 0)
        return context.save_evidence("ct_tissue_classes.png", png_bytes(rgb), "image/png")

    # --- (c) metal ----------------------------------------------------------------------------

    def _metal(self, volume: SeriesVolume, pixels: np.ndarray, pad: np.ndarray) -> list[Finding]:
        metal = (pixels > METAL_HU) & ~pad
        per_slice = metal.reshape(metal.shape[0], -1).sum(axis=1)
        count = int(per_slice.sum())
        if count < METAL_MIN_VOXELS:
            return []
        slices = np.flatnonzero(per_slice)
        dz = (volume.spacing[0] if volume.frames > 1 else None) or volume.slice_thickness
        dy, dx = volume.spacing[1], volume.spacing[2]
        ml = count * dz * dy * dx / 1000.0 if dz and dy and dx else None
        amount = f"{fmt(ml, 2)} mL" if ml is not None else f"{count} voxels"
        return [
            Finding(
                code="ct.metal",
                title=(
                    f"Metal present ({amount} above {fmt(METAL_HU, 0)} HU on {slices.size} "
                    "slice(s)): streak artefacts may affect measurement"
                ),
                severity=Severity.WARNING,
                method=(
                    f"Voxels above {fmt(METAL_HU, 0)} HU anywhere in the field of view (padding "
                    f"excluded); reported from {METAL_MIN_VOXELS} voxels on."
                ),
                limitations=(
                    "Dense contrast or very dense bone can exceed 2500 HU; values clipped at the "
                    "scanner's maximum hide the true density; the kind of object is not "
                    "identified."
                ),
                value=ml if ml is not None else float(count),
                unit="mL" if ml is not None else "voxels",
                value_text=f"{count} voxels on slices {int(slices[0]) + 1}-{int(slices[-1]) + 1}",
                series_uid=volume.series_uid,
                evidence={
                    "key_image": key_image(volume, int(np.argmax(per_slice))),
                    "slices": [int(s) for s in slices[:200]],
                    "voxels": count,
                },
                report_text=(
                    f"Metal-density material (> {fmt(METAL_HU, 0)} HU, about {amount}) is present "
                    f"on {slices.size} slice(s); streak artefacts may limit assessment nearby."
                ),
            )
        ]
