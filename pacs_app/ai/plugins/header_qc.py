"""Header QC: what the DICOM headers of each series say against the order, and what is missing.

Checks, per loaded series: modality and body part against the order; Pixel Spacing (Imager
Pixel Spacing accepted for projection radiography, with a note); Slice Thickness and Image
Orientation for CT/MR volumes; lossy compression; burned-in annotation. Series without pixel
data that the pipeline skipped are listed for the record.
"""

from __future__ import annotations

from typing import Any

from pacs_app.ai.base import Finding, PluginResult, SeriesVolume, Severity, StudyContext
from pacs_app.ai.plugins._common import key_image, modality_codes, tag_floats, tag_text

MODALITY = "00080060"
BODY_PART = "00180015"
PIXEL_SPACING = "00280030"
IMAGER_PIXEL_SPACING = "00181164"
SLICE_THICKNESS = "00180050"
ORIENTATION = "00200037"
LOSSY = "00282110"
LOSSY_RATIO = "00282112"
LOSSY_METHOD = "00282114"
BURNED_IN = "00280301"
SOP_UID = "00080018"

SPACING_MODALITIES = frozenset({"CT", "MR", "CR", "DX", "MG", "PT", "NM"})
PROJECTION = frozenset({"CR", "DX", "MG"})
VOLUME_MODALITIES = frozenset({"CT", "MR"})
# Objects that commonly sit in a study of another modality (dose sheets, presentation states).
SECONDARY = frozenset({"OT", "SC", "PR", "KO", "SR", "DOC", "REG", "SEG", "RTSTRUCT", "RTDOSE"})
# Pairs that commonly share one order (hybrid imaging, CR/DX naming).
COMPATIBLE = (
    frozenset({"CR", "DX"}),
    frozenset({"DX", "MG"}),
    frozenset({"PT", "CT"}),
    frozenset({"NM", "CT"}),
    frozenset({"PT", "MR"}),
)
MAX_SPACING_MM = 50.0

# Transfer syntaxes that are always lossy, and those that may be (the header then decides).
LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.51": "JPEG Extended",
    "1.2.840.10008.1.2.4.81": "JPEG-LS near-lossless",
    **{f"1.2.840.10008.1.2.4.{n}": "MPEG/HEVC video" for n in range(100, 109)},
}
MAYBE_LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.4.93": "JPIP JPEG 2000",
    "1.2.840.10008.1.2.4.203": "HTJ2K",
    "1.2.840.10008.1.2.4.112": "JPEG XL",
}

# Body regions by keyword (DICOM body part values and common free text).
REGIONS = {
    "chest": ("CHEST", "THORAX", "LUNG", "THORAC", "RIB", "STERNUM", "HEART", "CARD", "BREAST"),
    "abdomen": ("ABD", "LIVER", "KIDNEY", "RENAL", "PANCREAS", "STOMACH", "BOWEL", "CAP"),
    "pelvis": ("PELV", "HIP", "BLADDER", "PROSTATE", "SACRUM", "CAP"),
    "head": ("HEAD", "BRAIN", "SKULL", "NEURO", "ORBIT", "SINUS", "FACE", "IAC", "TEMPORAL"),
    "neck": ("NECK", "THYROID", "LARYN", "CSPINE", "CERVICAL"),
    "spine": ("SPINE", "VERTEB", "LUMBAR", "LSPINE", "TSPINE", "CSPINE", "SACRUM", "COCCYX"),
    "upper_limb": ("SHOULDER", "ARM", "ELBOW", "WRIST", "HAND", "FINGER", "CLAVICLE", "EXTREM"),
    "lower_limb": ("LEG", "KNEE", "ANKLE", "FOOT", "TOE", "FEMUR", "TIBIA", "HIP", "EXTREM"),
}
WHOLE_BODY = ("WHOLE", "WB", "BODY", "TOTAL")


def regions(text: str) -> set[str] | None:
    """Body regions a body-part text names; None when it names none we know."""
    upper = text.upper().replace(" ", "").replace("_", "")
    if any(word in upper for word in WHOLE_BODY):
        return set(REGIONS)
    found = {name for name, words in REGIONS.items() if any(w in upper for w in words)}
    return found or None


def _uid(header: dict[str, Any]) -> str:
    return tag_text(header, SOP_UID)


def _valid_spacing(values: list[float] | None) -> bool:
    return bool(values) and len(values) >= 2 and all(0 < v <= MAX_SPACING_MM for v in values[:2])


def _has_thickness(header: dict[str, Any], volume: SeriesVolume) -> bool:
    if not header:  # no header at all: fall back to what the loader read
        return bool(volume.slice_thickness and volume.slice_thickness > 0)
    thickness = tag_floats(header, SLICE_THICKNESS)
    return bool(thickness) and thickness[0] > 0


def _has_orientation(header: dict[str, Any], volume: SeriesVolume) -> bool:
    if not header:
        return any(o is not None and len(o) == 6 for o in volume.orientations)
    return len(tag_floats(header, ORIENTATION) or []) == 6


def _sample(uids: list[str]) -> list[str]:
    return [u for u in uids if u][:10]


class HeaderQC:
    name = "header_qc"
    version = "1.0.0"
    kind = "qc"
    description = (
        "Checks the DICOM headers of each series against the order (modality, body part) and "
        "for what measurements need (pixel spacing, slice thickness, orientation); flags lossy "
        "compression and burned-in annotation."
    )

    def applies(self, context: StudyContext) -> bool:
        return bool(context.series or context.skipped_series)

    def run(self, context: StudyContext) -> PluginResult:
        result = PluginResult()
        for volume in context.series:
            found = [
                *self._modality(context, volume),
                *self._body_part(context, volume),
                *self._spacing(volume),
                *self._volume_geometry(volume),
                *self._lossy(volume),
                *self._burned_in(volume),
            ]
            if not found:
                found.append(self._ok(volume))
            result.findings.extend(found)
        for info in context.skipped_series:
            result.findings.append(
                Finding(
                    code="header.skipped_series",
                    title=(
                        f"Series '{info.description or info.series_uid}' ({info.modality}, "
                        f"{info.instances} instance(s)) has no images and was not analysed"
                    ),
                    severity=Severity.INFO,
                    method="Listed by the series selection: the series holds no pixel data.",
                    limitations="Its content (e.g. a structured report) was not read.",
                    value=float(info.instances),
                    unit="instances",
                    series_uid=info.series_uid,
                    evidence={"modality": info.modality},
                )
            )
        return result

    # --- checks -------------------------------------------------------------------------------

    def _modality(self, context: StudyContext, volume: SeriesVolume) -> list[Finding]:
        header = volume.headers[0] if volume.headers else {}
        modality = (volume.modality or tag_text(header, MODALITY)).upper()
        ordered = modality_codes(context.modality or "")
        if not modality or not ordered or modality in ordered:
            return []
        secondary = modality in SECONDARY
        compatible = any(modality in pair and ordered & pair for pair in COMPATIBLE)
        severity = Severity.INFO if secondary or compatible else Severity.WARNING
        why = (
            " (a secondary or derived object)"
            if secondary
            else " (a combination that commonly shares one order)"
            if compatible
            else ""
        )
        return [
            Finding(
                code="header.modality_mismatch",
                title=(
                    f"Series modality {modality} differs from the ordered modality "
                    f"{context.modality}{why}"
                ),
                severity=severity,
                method=(
                    "Modality (0008,0060) of the series compared with the order's modality codes "
                    "(split at \\ / , ;). CR/DX, DX/MG, PT/CT, NM/CT and PT/MR count as "
                    "compatible (info); OT, SC, PR, KO, SR, DOC, REG, SEG and RT objects as "
                    "secondary (info); any other difference is a warning."
                ),
                limitations=(
                    "Compares codes only: it cannot tell whether the wrong study was attached "
                    "or the order was entered with the wrong modality."
                ),
                value_text=modality,
                series_uid=volume.series_uid,
                evidence={"key_image": key_image(volume), "ordered": context.modality},
            )
        ]

    def _body_part(self, context: StudyContext, volume: SeriesVolume) -> list[Finding]:
        header = volume.headers[0] if volume.headers else {}
        series_part = (volume.body_part or tag_text(header, BODY_PART)).strip()
        ordered = (context.body_part or "").strip()
        if not series_part or not ordered or series_part.upper() == ordered.upper():
            return []
        series_regions, ordered_regions = regions(series_part), regions(ordered)
        if series_regions is not None and ordered_regions is not None:
            if series_regions & ordered_regions:
                return []  # synonyms or overlapping regions (e.g. THORAX vs CHEST)
            severity = Severity.WARNING
        else:
            severity = Severity.INFO  # a word we do not map: report, do not alarm
        return [
            Finding(
                code="header.body_part_mismatch",
                title=(
                    f"Body part examined '{series_part}' differs from the ordered body part "
                    f"'{ordered}'"
                ),
                severity=severity,
                method=(
                    "Body Part Examined (0018,0015) compared case-insensitively with the order's "
                    "body part; both are mapped to body regions by keyword (e.g. CHEST, THORAX, "
                    "LUNG -> chest) and a warning is given only when the regions do not overlap; "
                    "unmapped words that differ give an info finding."
                ),
                limitations=(
                    "Body Part Examined is often missing, generic or set by protocol; a mismatch "
                    "may be a labelling habit rather than a wrong examination."
                ),
                value_text=series_part,
                series_uid=volume.series_uid,
                evidence={"key_image": key_image(volume), "ordered": ordered},
            )
        ]

    def _spacing(self, volume: SeriesVolume) -> list[Finding]:
        modality = volume.modality.upper()
        if modality not in SPACING_MODALITIES:
            return []
        projection = modality in PROJECTION
        headers = volume.headers or [{}]
        missing: list[str] = []
        invalid: list[tuple[str, list[float]]] = []
        imager_only: list[str] = []
        for header in headers:
            spacing = tag_floats(header, PIXEL_SPACING)
            if not header:  # no header at all: fall back to what the loader read
                in_plane = [v for v in volume.spacing[1:] if v is not None]
                spacing = in_plane if len(in_plane) == 2 else None
            if _valid_spacing(spacing):
                continue
            if projection and _valid_spacing(tag_floats(header, IMAGER_PIXEL_SPACING)):
                imager_only.append(_uid(header))
            elif spacing is None:
                missing.append(_uid(header))
            else:
                invalid.append((_uid(header), spacing))
        found: list[Finding] = []
        accepted = " or Imager Pixel Spacing (0018,1164)" if projection else ""
        method = (
            f"Pixel Spacing (0028,0030){accepted} read from every instance header (and from the "
            f"functional groups of enhanced objects); valid means two values, each > 0 and <= "
            f"{MAX_SPACING_MM:g} mm."
        )
        limitations = (
            "Checks presence and plausibility only, not that the spacing is correct for the "
            "detector or reconstruction."
        )
        if missing:
            found.append(
                Finding(
                    code="header.pixel_spacing_missing",
                    title=(
                        f"Pixel spacing missing in {len(missing)} of {len(headers)} instance(s): "
                        "distances and areas cannot be given in mm"
                    ),
                    severity=Severity.WARNING,
                    method=method,
                    limitations=limitations,
                    value=float(len(missing)),
                    unit="instances",
                    series_uid=volume.series_uid,
                    evidence={"key_image": key_image(volume), "instances": _sample(missing)},
                )
            )
        if invalid:
            example = invalid[0][1]
            found.append(
                Finding(
                    code="header.pixel_spacing_invalid",
                    title=(
                        f"Pixel spacing invalid ({', '.join(f'{v:g}' for v in example)}) in "
                        f"{len(invalid)} of {len(headers)} instance(s): measurements in mm are "
                        "not possible"
                    ),
                    severity=Severity.WARNING,
                    method=method,
                    limitations=limitations,
                    value_text=", ".join(f"{v:g}" for v in example),
                    series_uid=volume.series_uid,
                    evidence={
                        "key_image": key_image(volume),
                        "instances": _sample([uid for uid, _ in invalid]),
                        "values": example,
                    },
                )
            )
        if imager_only:
            found.append(
                Finding(
                    code="header.imager_pixel_spacing_only",
                    title=(
                        "Only Imager Pixel Spacing (detector plane) is given: measurements are at "
                        "the detector, not corrected for magnification"
                    ),
                    severity=Severity.INFO,
                    method=method,
                    limitations=(
                        "Imager Pixel Spacing describes the detector; objects in the patient are "
                        "typically magnified by 5-20 % depending on source-object distance."
                    ),
                    value=float(len(imager_only)),
                    unit="instances",
                    series_uid=volume.series_uid,
                    evidence={"key_image": key_image(volume), "instances": _sample(imager_only)},
                )
            )
        return found

    def _volume_geometry(self, volume: SeriesVolume) -> list[Finding]:
        modality = volume.modality.upper()
        if modality not in VOLUME_MODALITIES:
            return []
        headers = volume.headers or [{}]
        found: list[Finding] = []
        if volume.frames > 1:
            without = [_uid(h) for h in headers if not _has_thickness(h, volume)]
            if without:
                found.append(
                    Finding(
                        code="header.slice_thickness_missing",
                        title=(
                            f"Slice thickness missing in {len(without)} of {len(headers)} "
                            "instance(s) of a volume"
                        ),
                        severity=Severity.WARNING,
                        method=(
                            "Slice Thickness (0018,0050) read from every instance header (and the "
                            "functional groups); missing or <= 0 counts as missing."
                        ),
                        limitations=(
                            "Volumes still use the spacing between slice positions; only the "
                            "stated thickness (partial-volume effect) is unknown."
                        ),
                        value=float(len(without)),
                        unit="instances",
                        series_uid=volume.series_uid,
                        evidence={"key_image": key_image(volume), "instances": _sample(without)},
                    )
                )
        no_orientation = [_uid(h) for h in headers if not _has_orientation(h, volume)]
        if no_orientation:
            found.append(
                Finding(
                    code="header.orientation_missing",
                    title=(
                        f"Image orientation missing in {len(no_orientation)} of {len(headers)} "
                        "instance(s): the slice direction and patient sides cannot be verified"
                    ),
                    severity=Severity.WARNING,
                    method=(
                        "Image Orientation (Patient) (0020,0037) read from every instance header "
                        "(and the functional groups); anything other than six numbers counts as "
                        "missing."
                    ),
                    limitations="Checks presence only, not that the orientation is correct.",
                    value=float(len(no_orientation)),
                    unit="instances",
                    series_uid=volume.series_uid,
                    evidence={
                        "key_image": key_image(volume),
                        "instances": _sample(no_orientation),
                    },
                )
            )
        return found

    def _lossy(self, volume: SeriesVolume) -> list[Finding]:
        headers = volume.headers or [{}]
        flagged = [h for h in headers if tag_text(h, LOSSY) == "01"]
        stated_lossless = any(tag_text(h, LOSSY) == "00" for h in headers)
        syntaxes = set(volume.transfer_syntaxes)
        lossy_ts = sorted(LOSSY_SYNTAXES[t] for t in syntaxes if t in LOSSY_SYNTAXES)
        maybe_ts = sorted(MAYBE_LOSSY_SYNTAXES[t] for t in syntaxes if t in MAYBE_LOSSY_SYNTAXES)
        if not flagged and not lossy_ts and not (maybe_ts and not stated_lossless):
            return []
        reasons = []
        if flagged:
            reasons.append(f"Lossy Image Compression = 01 in {len(flagged)} instance(s)")
            ratio = tag_floats(flagged[0], LOSSY_RATIO)
            method = tag_text(flagged[0], LOSSY_METHOD)
            if ratio:
                reasons.append(f"ratio {ratio[0]:g}:1")
            if method:
                reasons.append(f"method {method}")
        if lossy_ts:
            reasons.append(f"lossy transfer syntax {', '.join(lossy_ts)}")
        definite = bool(flagged or lossy_ts)
        if maybe_ts and not definite:
            reasons.append(
                f"transfer syntax {', '.join(maybe_ts)} allows lossy coding and the header does "
                "not state lossless"
            )
        title = (
            "Images are lossy compressed" if definite else "Images may be lossy compressed"
        ) + f" ({'; '.join(reasons)})"
        return [
            Finding(
                code="header.lossy_compression",
                title=title,
                severity=Severity.WARNING,
                method=(
                    "Lossy Image Compression (0028,2110) = '01' in any instance, or a transfer "
                    "syntax that is always lossy (JPEG baseline/extended 1.2.840.10008.1.2.4.50/"
                    ".51, JPEG-LS near-lossless .81, MPEG/HEVC), or one that may be lossy (JPEG "
                    "2000 .91, HTJ2K .203, JPEG XL .112) without a header stating '00'."
                ),
                limitations=(
                    "Cannot measure how much detail was lost; a lossless-capable syntax may still "
                    "hold lossless data when the header is silent."
                ),
                value_text="; ".join(reasons),
                series_uid=volume.series_uid,
                evidence={
                    "key_image": key_image(volume),
                    "transfer_syntaxes": sorted(syntaxes),
                    "instances": _sample([_uid(h) for h in flagged]),
                },
                report_text=(
                    "Images were received with lossy compression, which may limit fine detail."
                    if definite
                    else ""
                ),
            )
        ]

    def _burned_in(self, volume: SeriesVolume) -> list[Finding]:
        flagged = [h for h in volume.headers if tag_text(h, BURNED_IN).upper() == "YES"]
        if not flagged:
            return []
        return [
            Finding(
                code="header.burned_in_annotation",
                title=(
                    f"Burned-in annotation in {len(flagged)} instance(s): patient data may be in "
                    "the pixels"
                ),
                severity=Severity.WARNING,
                method="Burned In Annotation (0028,0301) = 'YES' in the instance header.",
                limitations=(
                    "Relies on the header; annotation burned in without the flag is not detected "
                    "(no text recognition is done)."
                ),
                value=float(len(flagged)),
                unit="instances",
                series_uid=volume.series_uid,
                evidence={
                    "key_image": key_image(volume),
                    "instances": _sample([_uid(h) for h in flagged]),
                },
            )
        ]

    def _ok(self, volume: SeriesVolume) -> Finding:
        return Finding(
            code="header.ok",
            title=f"Header checks passed ({volume.modality or 'unknown modality'} series)",
            severity=Severity.INFO,
            method=(
                "Modality and body part against the order; Pixel Spacing present and within "
                f"(0, {MAX_SPACING_MM:g}] mm where the modality needs it; Slice Thickness and "
                "Image Orientation for CT/MR; lossy compression; burned-in annotation."
            ),
            limitations="Header content only; the pixels were not examined by this check.",
            series_uid=volume.series_uid,
            evidence={"key_image": key_image(volume), "instances": len(volume.headers)},
        )
