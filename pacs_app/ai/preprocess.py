"""MONAI pre-processing of a :class:`SeriesVolume` for plugins and learned models.

torch and MONAI are imported inside the functions, so this module can be imported by a
process that has neither (the web process); calling the functions needs both.

Example::

    volume = load_series(candidate)
    tensor = to_model_input(volume, (96, 256, 256), intensity_range=(-1000.0, 1000.0))
    tensor.shape  # torch.Size([1, 96, 256, 256]), float32 in [0, 1]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pacs_app.ai.base import SeriesVolume
from pacs_app.core.errors import InvalidInput

if TYPE_CHECKING:
    import torch


def to_model_input(
    volume: SeriesVolume,
    spatial_size: tuple[int, ...],
    intensity_range: tuple[float, float] | None = None,
    *,
    frame: int | None = None,
) -> torch.Tensor:
    """A channel-first float32 tensor in [0, 1], resized to ``spatial_size``.

    ``spatial_size`` of two values gives ``(C, H, W)`` from one frame (``frame``, by default
    the middle one: the only one of a radiograph); of three values, ``(C, D, H, W)`` from the
    whole series. ``C`` is 1 for greyscale and 3 for colour. Intensities are mapped linearly
    from ``intensity_range`` (in modality units, e.g. HU, values outside it clipped) or, without
    it, from the data's own minimum and maximum. Resizing averages where it shrinks (``area``)
    and interpolates linearly where it enlarges.

    Raises :class:`InvalidInput` for a ``spatial_size`` of another length or with a size
    below 1, an empty ``intensity_range``, or a ``frame`` out of range.
    """
    import torch
    from monai.transforms import Compose, EnsureType, Resize, ScaleIntensity, ScaleIntensityRange

    if len(spatial_size) not in (2, 3) or any(int(size) < 1 for size in spatial_size):
        raise InvalidInput(f"spatial_size must be 2 or 3 sizes of at least 1, not {spatial_size}.")
    if len(spatial_size) == 2:
        index = volume.frames // 2 if frame is None else frame
        if not 0 <= index < volume.frames:
            raise InvalidInput(f"Frame {index} does not exist: the series has {volume.frames}.")
        image = volume.pixels[index]
    else:
        image = volume.pixels
    # Channel first: (1, ...) for greyscale, (3, ...) for colour (stored channel-last).
    data = np.moveaxis(image, -1, 0) if volume.is_color else image[np.newaxis]
    data = np.ascontiguousarray(data, dtype=np.float32)

    if intensity_range is not None:
        low, high = (float(v) for v in intensity_range)
        if not high > low:
            raise InvalidInput(f"The intensity range {intensity_range} is empty.")
        scale = ScaleIntensityRange(a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)
    else:
        scale = ScaleIntensity(minv=0.0, maxv=1.0)
    shrinking = all(
        int(want) <= have for want, have in zip(spatial_size, data.shape[1:], strict=True)
    )
    mode = "area" if shrinking else ("bilinear" if len(spatial_size) == 2 else "trilinear")
    transform = Compose(
        [
            scale,
            Resize(spatial_size=tuple(int(s) for s in spatial_size), mode=mode),
            EnsureType(data_type="tensor", dtype=torch.float32, track_meta=False),
        ]
    )
    # Both resize modes only average, so [0, 1] holds up to rounding; clamp that away.
    return transform(data).clamp_(0.0, 1.0)


def resample_isotropic(
    volume: SeriesVolume, spacing_mm: float
) -> tuple[np.ndarray, tuple[float | None, float | None, float | None]]:
    """The greyscale pixels resampled (linearly) to ``spacing_mm`` along every axis of known
    spacing, and the new ``(slices, rows, columns)`` spacing.

    Axes whose spacing the header lacks are left as they are (their spacing stays ``None``); a
    single-frame series is resampled in-plane only. Returns float32 ``(frames, rows, columns)``.

    Raises :class:`InvalidInput` for a colour series or a spacing that is not positive.
    """
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Spacing

    if volume.is_color:
        raise InvalidInput("Resampling is for greyscale series; this one is colour.")
    if not spacing_mm > 0:
        raise InvalidInput(f"The target spacing must be positive, not {spacing_mm}.")
    slice_spacing, row_spacing, column_spacing = volume.spacing
    if volume.frames == 1:
        data, known = volume.pixels[0][np.newaxis], [row_spacing, column_spacing]
    else:
        data, known = volume.pixels[np.newaxis], [slice_spacing, row_spacing, column_spacing]
    if not any(known):
        return volume.pixels.astype(np.float32, copy=True), volume.spacing

    affine = np.eye(4)
    for axis, spacing in enumerate(known):
        affine[axis, axis] = spacing or 1.0
    # A non-positive target tells Spacing to keep that axis as it is.
    pixdim = [float(spacing_mm) if spacing else -1.0 for spacing in known]
    image = MetaTensor(
        torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), affine=affine
    )
    out = Spacing(pixdim=pixdim, mode="bilinear", padding_mode="border", dtype=np.float32)(image)
    result = np.asarray(out.detach().cpu().numpy()[0], dtype=np.float32)
    out_affine = np.asarray(out.affine, dtype=np.float64)
    new = [
        round(float(np.linalg.norm(out_affine[: len(known), axis])), 6) if spacing else None
        for axis, spacing in enumerate(known)
    ]
    if volume.frames == 1:
        return result[np.newaxis], (slice_spacing, new[0], new[1])
    return result, (new[0], new[1], new[2])
