"""Small helpers the default plugins share: reading DICOM JSON headers, citing a key image.

Headers are DICOM JSON (tags as 8-hex-digit keys, values in ``["Value"]`` lists). Enhanced
multi-frame objects keep geometry in functional groups, so :func:`tag_values` also looks in the
shared functional groups (5200,9229) and in the first per-frame item (5200,9230).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pacs_app.ai.base import SeriesVolume

SHARED_GROUPS = "52009229"
PER_FRAME_GROUPS = "52009230"


def _direct(item: dict[str, Any], tag: str) -> list[Any] | None:
    element = item.get(tag)
    if not isinstance(element, dict):
        return None
    value = element.get("Value")
    return value if isinstance(value, list) and value else None


def _in_groups(header: dict[str, Any], groups_tag: str, tag: str) -> list[Any] | None:
    groups = _direct(header, groups_tag)
    if not groups or not isinstance(groups[0], dict):
        return None
    for element in groups[0].values():  # each functional group macro is a one-item sequence
        if not isinstance(element, dict) or element.get("vr") != "SQ":
            continue
        items = element.get("Value")
        if items and isinstance(items[0], dict):
            found = _direct(items[0], tag)
            if found is not None:
                return found
    return None


def tag_values(header: dict[str, Any], tag: str) -> list[Any] | None:
    """The ``Value`` list of ``tag`` (top level, else in the functional groups), or None."""
    return (
        _direct(header, tag)
        or _in_groups(header, SHARED_GROUPS, tag)
        or _in_groups(header, PER_FRAME_GROUPS, tag)
    )


def tag_text(header: dict[str, Any], tag: str) -> str:
    """The first value of ``tag`` as stripped text ("" when absent)."""
    values = tag_values(header, tag)
    if not values or values[0] is None:
        return ""
    return str(values[0]).strip()


def tag_floats(header: dict[str, Any], tag: str) -> list[float] | None:
    """All values of ``tag`` as floats; None when absent or not numeric."""
    values = tag_values(header, tag)
    if not values:
        return None
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def key_image(volume: SeriesVolume, frame: int = 0) -> dict[str, Any]:
    """Evidence entry pointing at one frame of the series."""
    frame = max(0, min(frame, volume.frames - 1))
    if frame < len(volume.frame_sources):
        sop, index = volume.frame_sources[frame]
    else:
        sop, index = "", frame
    return {"sop_instance_uid": sop, "frame": int(index)}


def stride_for(rows: int, columns: int, max_pixels: int = 1_000_000) -> int:
    """The smallest integer stride that leaves at most ``max_pixels`` pixels per frame."""
    stride = 1
    while (rows // stride) * (columns // stride) > max_pixels:
        stride += 1
    return stride


def modality_codes(text: str) -> set[str]:
    """'CT', 'PT\\CT', 'CT/PT', 'ct, pt' -> {'CT', 'PT'}."""
    for sep in "\\/,;+ ":
        text = text.replace(sep, "|")
    return {t.strip().upper() for t in text.split("|") if t.strip()}


def fmt(value: float, digits: int = 1) -> str:
    """A number for a sentence (no '-0.0')."""
    rounded = round(float(value), digits)
    return f"{0.0 if rounded == 0 else rounded:.{digits}f}"


def percentile_pair(values: np.ndarray, low: float, high: float) -> tuple[float, float]:
    lo, hi = np.percentile(values, [low, high])
    return float(lo), float(hi)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An ``(rows, columns, 3)`` uint8 array as PNG bytes."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def grey_rgb(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """A greyscale image windowed to ``[low, high]`` as an RGB uint8 array."""
    scaled = np.clip((image.astype(np.float32) - low) / max(high - low, 1e-6), 0, 1) * 255
    grey = scaled.astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)
