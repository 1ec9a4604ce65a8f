"""Image QC: what the pixels say about acquisition quality.

Per greyscale series: clipping at the ends of the stored value range, blank frames and, for
projection radiographs (CR/DX), an exposure summary of the normalised histogram (plus the
Deviation Index where the header gives one). Colour series: blank frames only. Big frames are
looked at with a stride so that at most about one million pixels per frame are read.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pacs_app.ai.base import Finding, PluginResult, SeriesVolume, Severity, StudyContext
from pacs_app.ai.plugins._common import fmt, key_image, stride_for, tag_floats, tag_text

MAX_PIXELS = 1_000_000
TOP_CLIP_WARN = 0.02  # > 2 % of pixels at the top of the stored range
BLANK_STD_FRACTION = 1e-3  # a frame whose SD is below 0.1 % of the value range is blank
RADIOGRAPHY = frozenset({"CR", "DX"})
PROJECTION = frozenset({"CR", "DX", "MG", "RF", "XA"})
SHUTTER_MIN = 0.01  # a top-value region touching the edge, > 1 % of the frame: collimation
# Exposure rules on the histogram normalised to the stored range (0 = lowest, 1 = highest
# value, after MONOCHROME1 inversion so that brighter = less radiation reached the detector).
DARK_MEAN = 0.15  # mean below: predominantly dark, possible overexposure
BRIGHT_MEAN = 0.85  # mean above: predominantly bright, possible underexposure
NARROW_RANGE = 0.15  # 99th - 1st percentile below: narrow histogram
DEVIATION_INDEX = "00181413"
DI_LIMIT = 3.0  # |DI| > 3: exposure about 2x off target (IEC 62494-1: DI = 10 log10(EI/EIt))


def _tolerance(volume: SeriesVolume) -> float:
    low, high = volume.value_range
    return 1e-4 * max(1.0, float(high) - float(low))


def _view(volume: SeriesVolume) -> tuple[np.ndarray, int]:
    rows, columns = volume.pixels.shape[1:3]
    stride = stride_for(rows, columns, MAX_PIXELS)
    return volume.pixels[:, ::stride, ::stride], stride


def shutter_mask(at_top: np.ndarray) -> np.ndarray:
    """Collimator/shutter areas of one radiograph frame: regions at the top value that touch
    the image edge and cover more than 1 % of the frame (processing paints them uniformly)."""
    if at_top.mean() < SHUTTER_MIN:
        return np.zeros_like(at_top)
    labels, _ = ndimage.label(at_top)
    sizes = np.bincount(labels.ravel())
    edge = np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    keep = np.zeros(sizes.size, dtype=bool)
    keep[edge] = sizes[edge] >= SHUTTER_MIN * at_top.size
    keep[0] = False
    return keep[labels]


def _sampling(stride: int) -> str:
    if stride == 1:
        return "All pixels were read."
    return f"Read on one pixel in {stride} along rows and columns (at most ~1M pixels per frame)."


class ImageQC:
    name = "image_qc"
    version = "1.0.0"
    kind = "qc"
    description = (
        "Checks the pixels of each series for clipping at the ends of the value range, blank "
        "frames and, for radiographs, exposure from the histogram and the Deviation Index."
    )

    def applies(self, context: StudyContext) -> bool:
        return any(v.frames > 0 for v in context.series)

    def run(self, context: StudyContext) -> PluginResult:
        result = PluginResult()
        for volume in context.series:
            if volume.frames == 0:
                continue
            view, stride = _view(volume)
            result.findings.append(self._blank_frames(volume, view, stride))
            if volume.is_color:
                continue
            at_top = view >= volume.value_range[1] - _tolerance(volume)
            shutter = None
            if volume.modality.upper() in PROJECTION:
                shutter = np.stack([shutter_mask(frame) for frame in at_top])
            result.findings.append(self._clipping(volume, view, stride, at_top, shutter))
            if volume.modality.upper() in RADIOGRAPHY:
                result.findings.extend(self._exposure(volume, view, stride, shutter))
        return result

    def _blank_frames(self, volume: SeriesVolume, view: np.ndarray, stride: int) -> Finding:
        flat = view.reshape(view.shape[0], -1)
        if volume.is_color:
            span, unit = 255.0, "8-bit colour values"
        else:
            low, high = volume.value_range
            span, unit = float(high - low) or 1.0, "the stored value range"
        limit = BLANK_STD_FRACTION * span
        spread = np.array([float(frame.std(dtype=np.float64)) for frame in flat])
        blank = np.flatnonzero(spread <= limit)
        method = (
            "Standard deviation of each frame's pixels; a frame with SD <= "
            f"{BLANK_STD_FRACTION:.1%} of {unit} ({fmt(limit, 3)}) is blank. {_sampling(stride)}"
        )
        limitations = (
            "Finds uniform frames only; a frame of noise or of the wrong anatomy is not detected."
        )
        if blank.size == 0:
            return Finding(
                code="image.blank_frames",
                title=f"No blank frames among {volume.frames}",
                severity=Severity.INFO,
                method=method,
                limitations=limitations,
                value=0.0,
                unit="frames",
                series_uid=volume.series_uid,
                evidence={"key_image": key_image(volume)},
            )
        listed = ", ".join(str(int(i) + 1) for i in blank[:20]) + (
            " ..." if blank.size > 20 else ""
        )
        return Finding(
            code="image.blank_frames",
            title=f"{blank.size} of {volume.frames} frame(s) blank (frame {listed})",
            severity=Severity.WARNING,
            method=method,
            limitations=limitations,
            value=float(blank.size),
            unit="frames",
            value_text=f"frames (1-based, in series order): {listed}",
            series_uid=volume.series_uid,
            evidence={
                "key_image": key_image(volume, int(blank[0])),
                "frames": [int(i) for i in blank[:100]],
            },
        )

    def _clipping(
        self,
        volume: SeriesVolume,
        view: np.ndarray,
        stride: int,
        at_top: np.ndarray,
        shutter: np.ndarray | None,
    ) -> Finding:
        low, high = (float(v) for v in volume.value_range)
        at_bottom = view <= low + _tolerance(volume)
        masked = float(shutter.mean()) if shutter is not None else 0.0
        clipped = at_top & ~shutter if shutter is not None else at_top
        top = float(clipped.mean())
        bottom = float(at_bottom.mean())
        worst = int(np.argmax(clipped.reshape(clipped.shape[0], -1).sum(axis=1)))
        warn = top > TOP_CLIP_WARN
        title = (
            f"{fmt(100 * top, 1)} % of pixels saturated at the top of the value range "
            f"({fmt(high, 0)})"
            if warn
            else f"No relevant saturation: {fmt(100 * top, 2)} % of pixels at the top and "
            f"{fmt(100 * bottom, 2)} % at the bottom of the value range"
        )
        if masked:
            title += f" ({fmt(100 * masked, 1)} % of the image is a collimation/shutter area)"
        shutter_rule = (
            " For projection radiographs, regions at the top value that touch the image edge and "
            f"cover > {SHUTTER_MIN:.0%} of the frame count as collimation/shutter areas, not as "
            "saturation."
            if shutter is not None
            else ""
        )
        return Finding(
            code="image.saturation",
            title=title,
            severity=Severity.WARNING if warn else Severity.INFO,
            method=(
                f"Fraction of pixels equal to the ends of the stored value range "
                f"[{fmt(low, 0)}, {fmt(high, 0)}] (from BitsStored, signedness and rescale); a "
                f"warning above {TOP_CLIP_WARN:.0%} at the top end. The bottom end is reported "
                f"only, as background, direct exposure and CT padding normally sit there."
                f"{shutter_rule} {_sampling(stride)}"
            ),
            limitations=(
                "Detects clipping at the ends of the stored range only; clipping inside the "
                "range (by the modality's processing or windowing) is not seen."
            ),
            value=100 * top,
            unit="%",
            value_text=(
                f"top {fmt(100 * top, 2)} %, bottom {fmt(100 * bottom, 2)} %, collimation/shutter "
                f"{fmt(100 * masked, 2)} %"
            ),
            series_uid=volume.series_uid,
            evidence={
                "key_image": key_image(volume, worst),
                "top_fraction": round(top, 5),
                "bottom_fraction": round(bottom, 5),
                "shutter_fraction": round(masked, 5),
            },
        )

    def _exposure(
        self, volume: SeriesVolume, view: np.ndarray, stride: int, shutter: np.ndarray | None
    ) -> list[Finding]:
        low, high = (float(v) for v in volume.value_range)
        span = (high - low) or 1.0
        found: list[Finding] = []
        for frame in range(view.shape[0]):
            pixels = view[frame] if shutter is None else view[frame][~shutter[frame]]
            if pixels.size == 0:
                continue
            normalised = (pixels.astype(np.float32) - low) / span
            mean = float(normalised.mean())
            p1, p99 = (float(v) for v in np.percentile(normalised, [1, 99]))
            problems = []
            if mean < DARK_MEAN:
                problems.append("image predominantly dark: possible overexposure")
            if mean > BRIGHT_MEAN:
                problems.append("image predominantly bright: possible underexposure")
            if p99 - p1 < NARROW_RANGE:
                problems.append(
                    f"narrow histogram ({fmt(100 * (p99 - p1), 0)} % of the range used): "
                    "possible exposure or processing problem"
                )
            numbers = f"mean {mean:.2f}, 1st percentile {p1:.2f}, 99th percentile {p99:.2f}"
            found.append(
                Finding(
                    code="image.exposure",
                    title=(
                        f"Exposure check: {'; '.join(problems)} ({numbers})"
                        if problems
                        else f"Exposure histogram within the expected range ({numbers})"
                    ),
                    severity=Severity.WARNING if problems else Severity.INFO,
                    method=(
                        "Pixel values normalised to the stored range (0 = lowest, 1 = highest; "
                        "MONOCHROME1 inverted so brighter = less exposure), collimation/shutter "
                        "areas (top value, touching the edge) left out. Rules: mean < "
                        f"{DARK_MEAN} -> possible overexposure; mean > {BRIGHT_MEAN} -> possible "
                        f"underexposure; 99th - 1st percentile < {NARROW_RANGE} -> narrow "
                        f"histogram. {_sampling(stride)}"
                    ),
                    limitations=(
                        "Processed radiographs are rescaled by the modality, so the histogram "
                        "is a weak exposure indicator; collimation and large direct-exposure "
                        "areas shift it. The Deviation Index, where given, is the better measure."
                    ),
                    value=mean,
                    unit="fraction of range",
                    value_text=numbers,
                    series_uid=volume.series_uid,
                    evidence={
                        "key_image": key_image(volume, frame),
                        "mean": round(mean, 4),
                        "p1": round(p1, 4),
                        "p99": round(p99, 4),
                    },
                )
            )
        found.extend(self._deviation_index(volume))
        return found

    def _deviation_index(self, volume: SeriesVolume) -> list[Finding]:
        for header in volume.headers:
            values = tag_floats(header, DEVIATION_INDEX)
            if not values:
                continue
            di = values[0]
            if di > DI_LIMIT:
                verdict, severity = "above target: overexposure", Severity.WARNING
            elif di < -DI_LIMIT:
                verdict, severity = "below target: underexposure", Severity.WARNING
            else:
                verdict, severity = "within +/-3 of target", Severity.INFO
            sop = tag_text(header, "00080018")
            frame = next((i for i, (s, _) in enumerate(volume.frame_sources) if s == sop), 0)
            return [
                Finding(
                    code="image.deviation_index",
                    title=f"Deviation Index {fmt(di, 1)} ({verdict})",
                    severity=severity,
                    method=(
                        "Deviation Index (0018,1413) from the header (IEC 62494-1: DI = 10 "
                        f"log10(EI / target EI)); |DI| > {DI_LIMIT:g}, about a factor 2 from the "
                        "target exposure, is flagged."
                    ),
                    limitations=(
                        "Depends on the vendor's target exposure index and the anatomy chosen "
                        "at acquisition; not recomputed from the pixels."
                    ),
                    value=di,
                    unit="DI",
                    series_uid=volume.series_uid,
                    evidence={"key_image": key_image(volume, frame)},
                )
            ]
        return []
