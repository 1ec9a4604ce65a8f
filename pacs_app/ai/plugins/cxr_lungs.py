"""Chest radiograph lung fields: a classical segmentation for positioning and symmetry QC.

The lung fields are the two large dark regions inside the body on a frontal chest radiograph.
From them: the projected area of each field, their left/right ratio (symmetry), the offset of
their midpoint from the image centre (centring) and whether they reach the top or bottom edge
(apex/base possibly cut off). This is positioning QC, not a diagnosis: disease that changes
the aeration of a lung changes the segmented area too, and is not assessed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pacs_app.ai.base import Finding, PluginResult, SeriesVolume, Severity, StudyContext
from pacs_app.ai.plugins._common import fmt, grey_rgb, key_image, png_bytes, tag_floats, tag_text

TARGET_SIDE = 512  # downsample to at most this many pixels per side
BACKGROUND_LEVEL = 0.10  # normalised value below which border-connected pixels are background
OPEN_FRACTION = 0.02  # opening radius: 2 % of the longer side
MIN_FIELD_FRACTION = 0.02  # a lung field covers more than 2 % of the image
MIN_CENTROID_SEPARATION = 0.10  # the two fields' centroids at least 10 % of the width apart
RATIO_RANGE = (0.6, 1.67)  # left/right area ratio outside this: asymmetric
OFFSET_WARN = 0.10  # lung-field midpoint further than 10 % of the width from the centre
EDGE_BAND = 0.02  # a mask within the top/bottom 2 % of the image: possibly cut off
CHEST_WORDS = ("CHEST", "THORAX", "LUNG", "THORAC")
LATERAL = re.compile(r"\b(LAT|LATERAL|LL|RL)\b")
FRONTAL = re.compile(r"\b(PA|AP)\b")

METHOD = (
    "Classical segmentation: intensities normalised to the 1st-99th percentile, block-averaged to "
    f"at most {TARGET_SIDE} px per side, Gaussian smoothed; background = border-connected pixels "
    f"below {BACKGROUND_LEVEL}; Otsu threshold inside the body; opening with a disk of 2 % of "
    "the longer side; dark components touching the side edges or the background removed; "
    "closing with a disk of 1 %; the two largest components (each > 2 % of the image) kept, "
    "holes filled; sides by centroid relative to the image midline."
)
LIMITS = (
    "Positioning and symmetry QC only, not a diagnosis. Effusion, consolidation, collapse, "
    "large hearts or devices change the segmented fields; the projected area depends on "
    "inspiration, rotation and magnification. Sides assume the Patient Orientation (0020,0020) "
    "or, when absent, the standard display (patient's right on the image left)."
)


@dataclass
class LungFields:
    """Result of :func:`segment_lung_fields` (masks on the downsampled grid)."""

    image: np.ndarray  # the normalised, downsampled image (0..1)
    scale: int  # downsampling factor from the original grid
    right: np.ndarray | None = None  # patient's right lung field
    left: np.ndarray | None = None  # patient's left lung field
    pixel_mm: tuple[float, float] | None = None  # (row, column) spacing on the downsampled grid
    right_area: float | None = None
    left_area: float | None = None
    area_unit: str = "cm2"
    ratio: float | None = None  # left area / right area
    offset_fraction: float | None = None  # midpoint - image centre, fraction of width (+: right)
    offset_mm: float | None = None
    apex_cut: bool = False
    base_cut: bool = False
    threshold: float | None = None
    reason: str = ""  # why segmentation failed ("" when it worked)

    @property
    def ok(self) -> bool:
        return self.right is not None and self.left is not None


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the cut that maximises the between-class variance."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    hist, edges = np.histogram(values, bins=bins, range=(low, high))
    p = hist.astype(np.float64) / hist.sum()
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    total = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total * w0 - m0) ** 2 / (w0 * (1 - w0))
    between[~np.isfinite(between)] = 0
    return float(edges[int(np.argmax(between)) + 1])


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


def _open(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary opening with a disk of ``radius`` px, through distance transforms (fast for
    large radii)."""
    eroded = ndimage.distance_transform_edt(mask) > radius
    if not eroded.any():
        return eroded
    return (ndimage.distance_transform_edt(~eroded) <= radius) & mask


def _downsample(image: np.ndarray) -> tuple[np.ndarray, int]:
    factor = max(1, math.ceil(max(image.shape) / TARGET_SIDE))
    if factor == 1:
        return image, 1
    rows, columns = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:rows, :columns].reshape(rows // factor, factor, columns // factor, factor)
    return blocks.mean(axis=(1, 3)), factor


def _largest(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _split_at_waist(mask: np.ndarray) -> list[np.ndarray]:
    """Two fields joined across the midline (e.g. over the trachea): cut at the narrowest
    column of the middle 40 % of the component, when it is a real waist."""
    columns = np.flatnonzero(mask.any(axis=0))
    first, last = int(columns[0]), int(columns[-1])
    width = last - first + 1
    lo, hi = first + int(0.3 * width), first + int(0.7 * width)
    if hi <= lo:
        return [mask]
    counts = mask.sum(axis=0)
    cut = lo + int(np.argmin(counts[lo:hi]))
    if counts[cut] > 0.3 * counts.max():
        return [mask]
    left_part, right_part = mask.copy(), mask.copy()
    left_part[:, cut:] = False
    right_part[:, :cut] = False
    return [_largest(left_part), _largest(right_part)]


def segment_lung_fields(
    image: np.ndarray,
    pixel_spacing: tuple[float, float] | list[float] | None,
    *,
    patient_right_on_image_left: bool = True,
) -> LungFields:
    """Segment the two lung fields of a frontal chest radiograph.

    ``image``: 2D greyscale, brighter = more attenuation (MONOCHROME1 already inverted).
    ``pixel_spacing``: (row, column) in mm on the original grid, or None (areas then in pixels).
    Returns a :class:`LungFields`; ``ok`` is False and ``reason`` says why when fewer than two
    plausible fields were found.
    """
    data = np.asarray(image, dtype=np.float32)
    low, high = (float(v) for v in np.percentile(data, [1, 99]))
    if high <= low:
        return LungFields(image=np.zeros((1, 1), np.float32), scale=1, reason="uniform image")
    small, factor = _downsample(np.clip((data - low) / (high - low), 0, 1))
    rows, columns = small.shape
    result = LungFields(image=small.astype(np.float32), scale=factor)
    if pixel_spacing and len(pixel_spacing) >= 2 and all(v and v > 0 for v in pixel_spacing[:2]):
        result.pixel_mm = (float(pixel_spacing[0]) * factor, float(pixel_spacing[1]) * factor)
    else:
        result.area_unit = "px"
    smooth = ndimage.gaussian_filter(small, sigma=max(1.0, max(rows, columns) / 256))

    # Body: everything but the dark background connected to the image border.
    labels, _ = ndimage.label(smooth < BACKGROUND_LEVEL)
    edge_labels = np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    background = np.isin(labels, edge_labels[edge_labels > 0])
    body = ndimage.binary_fill_holes(_largest(~background))
    if body.sum() < 0.2 * body.size:
        result.reason = "no body region found (body covers < 20 % of the image)"
        return result

    # Lungs: the dark class inside the body, opened with a large disk so that thin dark
    # bridges (over the shoulders, along the flanks) to the outside are cut.
    threshold = otsu_threshold(smooth[body])
    result.threshold = threshold
    dark = body & (smooth < threshold)
    opened = _open(dark, max(2, round(OPEN_FRACTION * max(rows, columns))))
    labels, count = ndimage.label(opened)
    touching = np.zeros_like(dark)
    touching[:, [0, -1]] = True
    touching |= ndimage.binary_dilation(background)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    sizes[np.unique(labels[touching & opened])] = 0
    minimum = MIN_FIELD_FRACTION * small.size
    ranked = [int(i) for i in np.argsort(sizes)[::-1] if sizes[i] > minimum][:2]
    parts = [labels == i for i in ranked]
    if len(parts) == 1:
        parts = _split_at_waist(parts[0])
    disk = _disk(max(1, round(0.01 * max(rows, columns))))
    fields = []
    for part in parts:
        closed = ndimage.binary_fill_holes(ndimage.binary_closing(part, structure=disk)) & body
        if closed.sum() > minimum:
            fields.append(closed)
    if len(fields) < 2:
        result.reason = (
            f"{len(fields)} plausible lung field(s) found (two needed, each > 2 % of the image)"
        )
        return result
    centroid = [float(np.mean(np.nonzero(f)[1])) for f in fields]
    if abs(centroid[0] - centroid[1]) < MIN_CENTROID_SEPARATION * columns:
        result.reason = "the two largest dark regions are not side by side"
        return result
    image_left, image_right = (
        (fields[0], fields[1]) if centroid[0] < centroid[1] else (fields[1], fields[0])
    )
    if patient_right_on_image_left:
        result.right, result.left = image_left, image_right
    else:
        result.right, result.left = image_right, image_left

    pixel_area = result.pixel_mm[0] * result.pixel_mm[1] / 100.0 if result.pixel_mm else 1.0
    result.right_area = float(result.right.sum()) * pixel_area
    result.left_area = float(result.left.sum()) * pixel_area
    result.ratio = result.left_area / result.right_area
    union = result.right | result.left
    used = np.flatnonzero(union.any(axis=0))
    midpoint = (used[0] + used[-1]) / 2
    offset = midpoint - (columns - 1) / 2
    result.offset_fraction = float(offset / columns)
    result.offset_mm = float(offset * result.pixel_mm[1]) if result.pixel_mm else None
    band = max(1, round(EDGE_BAND * rows))
    result.apex_cut = bool(union[:band].any())
    result.base_cut = bool(union[-band:].any())
    return result


def overlay_png(fields: LungFields) -> bytes:
    """The downsampled image in grey with the patient's left field outlined in green and the
    right in blue."""
    rgb = grey_rgb(fields.image, 0.0, 1.0)
    for mask, colour in ((fields.left, (0, 220, 0)), (fields.right, (40, 120, 255))):
        if mask is None:
            continue
        outline = mask & ~ndimage.binary_erosion(mask, iterations=2)
        rgb[outline] = colour
    return png_bytes(rgb)


def _is_chest(context: StudyContext, volume: SeriesVolume) -> bool:
    texts = (volume.body_part, context.body_part, volume.description, context.description)
    if any(word in (t or "").upper() for t in texts for word in CHEST_WORDS):
        return True
    return bool(FRONTAL.search((volume.description or "").upper()))


def _is_lateral(volume: SeriesVolume) -> bool:
    header = volume.headers[0] if volume.headers else {}
    view = tag_text(header, "00185101").upper()  # View Position
    if view in {"LL", "RL", "LATERAL", "LLD", "RLD"}:
        return True
    return bool(LATERAL.search((volume.description or "").upper()))


def _spacing(volume: SeriesVolume) -> tuple[tuple[float, float] | None, str]:
    header = volume.headers[0] if volume.headers else {}
    for tag, name in (("00280030", "Pixel Spacing"), ("00181164", "Imager Pixel Spacing")):
        values = tag_floats(header, tag)
        if values and len(values) >= 2 and all(0 < v <= 50 for v in values[:2]):
            return (values[0], values[1]), name
    rows_mm, columns_mm = volume.spacing[1], volume.spacing[2]
    if rows_mm and columns_mm:
        return (rows_mm, columns_mm), "the loaded pixel spacing"
    return None, ""


def _standard_sides(volume: SeriesVolume) -> tuple[bool, str]:
    header = volume.headers[0] if volume.headers else {}
    orientation = tag_text(header, "00200020").upper()  # Patient Orientation, row direction first
    if orientation.startswith("R"):
        return False, "Patient Orientation says the rows run toward the patient's right"
    if orientation.startswith("L"):
        return True, "Patient Orientation says the rows run toward the patient's left"
    return True, "no Patient Orientation: standard display assumed"


class ChestRadiographLungFields:
    name = "cxr_lungs"
    version = "1.0.0"
    kind = "segmentation"
    description = (
        "Frontal chest radiographs: segments the lung fields classically and reports their "
        "areas, left/right symmetry, centring and apex/base coverage (positioning QC)."
    )

    def applies(self, context: StudyContext) -> bool:
        return bool(self._series(context))

    def _series(self, context: StudyContext) -> list[SeriesVolume]:
        return [
            v
            for v in context.series
            if v.modality.upper() in {"CR", "DX"}
            and v.frames >= 1
            and not v.is_color
            and _is_chest(context, v)
            and not _is_lateral(v)
        ]

    def run(self, context: StudyContext) -> PluginResult:
        result = PluginResult()
        for volume in self._series(context):
            spacing, spacing_source = _spacing(volume)
            standard, sides_note = _standard_sides(volume)
            fields = segment_lung_fields(
                volume.pixels[0], spacing, patient_right_on_image_left=standard
            )
            if not fields.ok:
                label = volume.description or volume.series_uid
                result.warnings.append(
                    f"lung fields could not be segmented in series '{label}': {fields.reason}."
                )
                continue
            evidence = {"key_image": key_image(volume, 0)}
            if context.save_evidence is not None:
                evidence["overlay"] = context.save_evidence(
                    "lung_fields.png", overlay_png(fields), "image/png"
                )
            result.findings.extend(
                self._findings(volume, fields, evidence, spacing_source, sides_note)
            )
        return result

    def _findings(
        self,
        volume: SeriesVolume,
        fields: LungFields,
        evidence: dict,
        spacing_source: str,
        sides_note: str,
    ) -> list[Finding]:
        assert fields.right_area is not None and fields.left_area is not None
        assert fields.ratio is not None and fields.offset_fraction is not None
        uid = volume.series_uid
        if fields.pixel_mm:
            unit, scale_note = (
                "cm2",
                f" Areas from {spacing_source} x {fields.scale} (downsampling).",
            )
        else:
            unit, scale_note = "px", " No pixel spacing: areas in pixels of the downsampled image."
        limits = LIMITS + (
            " Areas at the detector plane include the projection magnification."
            if spacing_source == "Imager Pixel Spacing"
            else ""
        )
        method = METHOD + scale_note + f" Sides: {sides_note}."

        def area(value: float) -> str:
            return f"{fmt(value, 1)} cm²" if unit == "cm2" else f"{fmt(value, 0)} px"

        found = [
            Finding(
                code="cxr.lung_field_area_right",
                title=(
                    f"Right lung field (patient's right) projected area {area(fields.right_area)}"
                ),
                severity=Severity.INFO,
                method=method,
                limitations=limits,
                value=fields.right_area,
                unit=unit,
                series_uid=uid,
                evidence=dict(evidence),
            ),
            Finding(
                code="cxr.lung_field_area_left",
                title=f"Left lung field (patient's left) projected area {area(fields.left_area)}",
                severity=Severity.INFO,
                method=method,
                limitations=limits,
                value=fields.left_area,
                unit=unit,
                series_uid=uid,
                evidence=dict(evidence),
            ),
        ]
        symmetric = RATIO_RANGE[0] <= fields.ratio <= RATIO_RANGE[1]
        found.append(
            Finding(
                code="cxr.lung_field_symmetry",
                title=(
                    f"Lung fields symmetric in size (left/right area ratio {fields.ratio:.2f})"
                    if symmetric
                    else f"Lung fields asymmetric in size (left/right area ratio "
                    f"{fields.ratio:.2f}): possible rotation or positioning problem"
                ),
                severity=Severity.INFO if symmetric else Severity.WARNING,
                method=method
                + f" Ratio = left area / right area; outside {RATIO_RANGE[0]}-{RATIO_RANGE[1]} "
                "is flagged.",
                limitations=limits,
                value=fields.ratio,
                unit="ratio",
                series_uid=uid,
                evidence=dict(evidence),
                report_text=""
                if symmetric
                else (
                    f"The segmented lung fields differ in projected size (left/right ratio "
                    f"{fields.ratio:.2f}), which may reflect rotation or positioning."
                ),
            )
        )
        off_centre = abs(fields.offset_fraction) > OFFSET_WARN
        toward = "image right" if fields.offset_fraction > 0 else "image left"
        distance = (
            f"{fmt(abs(fields.offset_mm), 0)} mm, " if fields.offset_mm is not None else ""
        ) + f"{fmt(100 * abs(fields.offset_fraction), 1)} % of the width"
        found.append(
            Finding(
                code="cxr.centring",
                title=(
                    f"Lung fields off centre by {distance} toward the {toward}"
                    if off_centre
                    else f"Lung fields centred ({distance} from the image centre)"
                ),
                severity=Severity.WARNING if off_centre else Severity.INFO,
                method=method
                + " Offset = midpoint between the outer edges of the two fields minus the image "
                f"centre column; more than {OFFSET_WARN:.0%} of the width is flagged.",
                limitations=limits + " Asymmetric collimation moves the image centre.",
                value=fields.offset_mm
                if fields.offset_mm is not None
                else 100 * fields.offset_fraction,
                unit="mm" if fields.offset_mm is not None else "% of width",
                value_text=f"toward the {toward}",
                series_uid=uid,
                evidence=dict(evidence),
            )
        )
        edges = [
            name
            for name, cut in (
                ("apices (top edge)", fields.apex_cut),
                ("bases (bottom edge)", fields.base_cut),
            )
            if cut
        ]
        found.append(
            Finding(
                code="cxr.coverage",
                title=(
                    f"Lung fields reach the {' and '.join(edges)}: may be cut off"
                    if edges
                    else "Lung fields do not reach the top or bottom edge of the image"
                ),
                severity=Severity.WARNING if edges else Severity.INFO,
                method=method
                + f" Cut off = a lung mask within the top or bottom {EDGE_BAND:.0%} of the rows.",
                limitations=limits
                + " The costophrenic angles may be excluded without the mask touching the edge.",
                value=float(len(edges)),
                unit="edges",
                series_uid=uid,
                evidence=dict(evidence),
                report_text=(
                    f"The lung {' and '.join(e.split(' ')[0] for e in edges)} may not be fully "
                    "included on the image."
                    if edges
                    else ""
                ),
            )
        )
        return found
