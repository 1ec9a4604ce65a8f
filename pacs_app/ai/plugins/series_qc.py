"""Series QC: is a multi-frame series a complete, regular stack?

Slice positions are projected on the slice normal (row x column direction cosines), sorted and
checked for duplicates, gaps and irregular steps; instance numbers for holes; orientations for
mixing. The median slice spacing is reported as a measurement.
"""

from __future__ import annotations

import numpy as np

from pacs_app.ai.base import Finding, PluginResult, SeriesVolume, Severity, StudyContext
from pacs_app.ai.plugins._common import fmt, key_image

DUPLICATE_MM = 0.01  # two slices closer than this along the normal are at the same place
GAP_FACTOR = 1.5  # a step larger than 1.5 x the median step is a gap
IRREGULAR_FRACTION = 0.10  # a step that differs from the median by > 10 % (and > 0.05 mm)
IRREGULAR_MIN_MM = 0.05
ORIENTATION_TOLERANCE = 1e-3
# Modalities whose multi-frame series are expected to be positioned volumes.
VOLUME_EXPECTED = frozenset({"CT", "MR", "PT"})

LIMITS = (
    "Uses the header geometry only; it cannot tell whether a missing slice was never acquired, "
    "not sent or deliberately left out, nor check what the pixels show."
)
POSITION_METHOD = (
    "ImagePositionPatient of each frame projected on the slice normal (cross product of the "
    "ImageOrientationPatient row and column cosines; the first-to-last position direction when "
    f"no orientation is known), sorted; duplicate: step < {DUPLICATE_MM} mm; gap: step > "
    f"{GAP_FACTOR} x the median step; irregular: other steps that differ from the median by > "
    f"{IRREGULAR_FRACTION:.0%} and > {IRREGULAR_MIN_MM} mm."
)


def _normal(volume: SeriesVolume, points: np.ndarray) -> np.ndarray | None:
    for orientation in volume.orientations:
        if orientation is not None and len(orientation) == 6:
            cosines = np.asarray(orientation, dtype=float)
            normal = np.cross(cosines[:3], cosines[3:])
            length = np.linalg.norm(normal)
            if length > 1e-6:
                return normal / length
    direction = points[-1] - points[0]
    length = np.linalg.norm(direction)
    return direction / length if length > 1e-6 else None


class SeriesQC:
    name = "series_qc"
    version = "1.0.0"
    kind = "qc"
    description = (
        "Checks multi-frame series for duplicate slices, gaps, irregular spacing, missing "
        "instance numbers and mixed orientations; reports the median slice spacing."
    )

    def applies(self, context: StudyContext) -> bool:
        return any(v.frames > 1 for v in context.series)

    def run(self, context: StudyContext) -> PluginResult:
        result = PluginResult()
        for volume in context.series:
            if volume.frames > 1:
                result.findings.extend(self._series(volume))
        return result

    def _series(self, volume: SeriesVolume) -> list[Finding]:
        found: list[Finding] = []
        mixed = self._orientations(volume)
        found.extend(mixed)
        found.extend(self._instance_numbers(volume))
        known = [i for i, p in enumerate(volume.positions) if p is not None]
        if len(known) < 2:
            if volume.modality.upper() in VOLUME_EXPECTED:
                found.append(
                    Finding(
                        code="series.positions_missing",
                        title=(
                            f"{volume.modality} series of {volume.frames} frames without slice "
                            "positions: slice order and spacing cannot be verified"
                        ),
                        severity=Severity.WARNING,
                        method=(
                            "ImagePositionPatient (0020,0032) looked for on every frame; a "
                            f"{'/'.join(sorted(VOLUME_EXPECTED))} series of several frames is "
                            "expected to carry one per frame."
                        ),
                        limitations=LIMITS,
                        value=float(volume.frames - len(known)),
                        unit="frames",
                        series_uid=volume.series_uid,
                        evidence={"key_image": key_image(volume)},
                    )
                )
            return found
        if len(known) < volume.frames:
            found.append(
                Finding(
                    code="series.positions_partial",
                    title=(
                        f"{volume.frames - len(known)} of {volume.frames} frames lack a slice "
                        "position; only the others were checked"
                    ),
                    severity=Severity.WARNING,
                    method="ImagePositionPatient (0020,0032) looked for on every frame.",
                    limitations=LIMITS,
                    value=float(volume.frames - len(known)),
                    unit="frames",
                    series_uid=volume.series_uid,
                    evidence={"key_image": key_image(volume, known[0])},
                )
            )
        if mixed:
            return found  # positions of differently oriented frames do not form one stack
        found.extend(self._positions(volume, known))
        return found

    def _positions(self, volume: SeriesVolume, known: list[int]) -> list[Finding]:
        points = np.asarray([volume.positions[i] for i in known], dtype=float)
        normal = _normal(volume, points)
        if normal is None:
            return []
        distance = points @ normal
        order = np.argsort(distance, kind="stable")
        frames = np.asarray(known)[order]
        steps = np.diff(distance[order])
        real = steps[steps >= DUPLICATE_MM]
        found: list[Finding] = []

        duplicate_at = np.flatnonzero(steps < DUPLICATE_MM)
        if duplicate_at.size:
            pairs = [[int(frames[k]), int(frames[k + 1])] for k in duplicate_at[:10]]
            found.append(
                Finding(
                    code="series.duplicate_positions",
                    title=f"{duplicate_at.size} duplicate slice position(s) in the series",
                    severity=Severity.WARNING,
                    method=POSITION_METHOD,
                    limitations=LIMITS
                    + " Duplicates may be repeated acquisitions or two reconstructions mixed.",
                    value=float(duplicate_at.size),
                    unit="slices",
                    series_uid=volume.series_uid,
                    evidence={
                        "key_image": key_image(volume, pairs[0][0]),
                        "frame_pairs": pairs,
                        "locations_mm": [
                            round(float(distance[order][k]), 3) for k in duplicate_at[:10]
                        ],
                    },
                )
            )
        if real.size == 0:
            return found
        median = float(np.median(real))
        gap_at = np.flatnonzero(steps > GAP_FACTOR * median)
        if gap_at.size:
            largest = float(steps[gap_at].max())
            missing = round(float(np.sum(steps[gap_at] / median - 1)))
            found.append(
                Finding(
                    code="series.slice_gap",
                    title=(
                        f"{gap_at.size} gap(s) in slice positions (largest {fmt(largest, 2)} mm "
                        f"against a median step of {fmt(median, 2)} mm; about {missing} "
                        "slice(s) missing)"
                    ),
                    severity=Severity.WARNING,
                    method=POSITION_METHOD,
                    limitations=LIMITS,
                    value=largest,
                    unit="mm",
                    series_uid=volume.series_uid,
                    evidence={
                        "key_image": key_image(volume, int(frames[gap_at[0]])),
                        "gaps_between_frames": [
                            [int(frames[k]), int(frames[k + 1])] for k in gap_at[:10]
                        ],
                        "gap_mm": [round(float(steps[k]), 3) for k in gap_at[:10]],
                    },
                )
            )
        tolerance = max(IRREGULAR_FRACTION * median, IRREGULAR_MIN_MM)
        irregular_at = np.flatnonzero(
            (steps >= DUPLICATE_MM)
            & (steps <= GAP_FACTOR * median)
            & (np.abs(steps - median) > tolerance)
        )
        if irregular_at.size:
            found.append(
                Finding(
                    code="series.irregular_spacing",
                    title=(
                        f"Irregular slice spacing: {irregular_at.size} step(s) between "
                        f"{fmt(real.min(), 2)} and {fmt(real.max(), 2)} mm around a median of "
                        f"{fmt(median, 2)} mm"
                    ),
                    severity=Severity.WARNING,
                    method=POSITION_METHOD,
                    limitations=LIMITS
                    + " Variable spacing can be intended (e.g. stacked acquisitions).",
                    value=float(np.abs(steps[irregular_at] - median).max()),
                    unit="mm",
                    value_text="largest deviation from the median step",
                    series_uid=volume.series_uid,
                    evidence={
                        "key_image": key_image(volume, int(frames[irregular_at[0]])),
                        "steps_mm": [round(float(steps[k]), 3) for k in irregular_at[:10]],
                    },
                )
            )
        extent = float(distance.max() - distance.min())
        found.append(
            Finding(
                code="series.slice_spacing",
                title=(
                    f"Median slice spacing {fmt(median, 2)} mm ({len(known)} positioned frames "
                    f"over {fmt(extent, 1)} mm)"
                ),
                severity=Severity.INFO,
                method=POSITION_METHOD,
                limitations=LIMITS + " The spacing is not the slice thickness.",
                value=median,
                unit="mm",
                series_uid=volume.series_uid,
                evidence={
                    "key_image": key_image(volume, int(frames[0])),
                    "extent_mm": round(extent, 2),
                    "normal": [round(float(v), 4) for v in normal],
                },
            )
        )
        return found

    def _orientations(self, volume: SeriesVolume) -> list[Finding]:
        known = [
            (i, np.asarray(o, dtype=float))
            for i, o in enumerate(volume.orientations)
            if o is not None and len(o) == 6
        ]
        if len(known) < 2:
            return []
        first = known[0][1]
        differing = [i for i, o in known[1:] if np.max(np.abs(o - first)) > ORIENTATION_TOLERANCE]
        if not differing:
            return []
        return [
            Finding(
                code="series.mixed_orientation",
                title=(
                    f"Mixed orientations: {len(differing)} of {len(known)} frames are oriented "
                    "differently from the first"
                ),
                severity=Severity.WARNING,
                method=(
                    "ImageOrientationPatient (0020,0037) of each frame compared with the first; "
                    f"a difference > {ORIENTATION_TOLERANCE:g} in any direction cosine counts."
                ),
                limitations=(
                    LIMITS + " Slice spacing was not checked because the frames do not form one "
                    "stack (e.g. a three-plane localizer)."
                ),
                value=float(len(differing)),
                unit="frames",
                series_uid=volume.series_uid,
                evidence={
                    "key_image": key_image(volume, differing[0]),
                    "frames": differing[:20],
                },
            )
        ]

    def _instance_numbers(self, volume: SeriesVolume) -> list[Finding]:
        per_instance: dict[str, int] = {}
        for i, number in enumerate(volume.instance_numbers):
            if number is None:
                continue
            sop = volume.frame_sources[i][0] if i < len(volume.frame_sources) else str(i)
            per_instance.setdefault(sop, int(number))
        numbers = sorted(per_instance.values())
        if len(numbers) < 2:
            return []
        found: list[Finding] = []
        present = set(numbers)
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - present)
        method = (
            "InstanceNumber (0020,0013) of each instance; every number between the lowest "
            f"({numbers[0]}) and the highest ({numbers[-1]}) is expected once."
        )
        limitations = (
            "Numbering need not start at 1 nor be contiguous by standard; a hole may be an "
            "instance never sent or one deliberately left out (e.g. a deleted image)."
        )
        if missing:
            shown = ", ".join(str(n) for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
            found.append(
                Finding(
                    code="series.instance_numbers_missing",
                    title=f"{len(missing)} instance number(s) missing ({shown})",
                    severity=Severity.WARNING,
                    method=method,
                    limitations=limitations,
                    value=float(len(missing)),
                    unit="instances",
                    series_uid=volume.series_uid,
                    evidence={"key_image": key_image(volume), "missing": missing[:50]},
                )
            )
        repeated = len(numbers) - len(present)
        if repeated:
            found.append(
                Finding(
                    code="series.instance_numbers_repeated",
                    title=f"{repeated} instance number(s) used by more than one instance",
                    severity=Severity.INFO,
                    method=method,
                    limitations=limitations,
                    value=float(repeated),
                    unit="instances",
                    series_uid=volume.series_uid,
                    evidence={"key_image": key_image(volume)},
                )
            )
        return found
