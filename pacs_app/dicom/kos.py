"""Key Object Selection documents (PS3.3 A.35.4, template TID 2010): a report's key images as
a DICOM object of their study.

The key images a radiologist marks live in the PACS's database; a Key Object Selection
Document (KOS) says the same in DICOM, so that a PACS or viewer the study goes to (by DICOMweb,
or as files) shows which images the report rests on, and this PACS's own viewer lists them with
the study's other structured documents. The document copies the patient and study attributes
of the images it selects, so that it files with them anywhere.

Example::

    ds = key_object_selection(
        study_instance_uid=study.study_instance_uid,
        study_header=instance.dicom_json,
        images=[KeyImageRef(series_uid, sop_class_uid, sop_uid, frame=1, multiframe=False)],
        description="Key images of the report signed by Dr A. Rao on 2026-12-06.",
        observer="Rao^A",
        series_number=4,
        when=utcnow(),
    )
    write(ds, path)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
MANUFACTURER = "Teleradiology PACS"
SERIES_DESCRIPTION = "Key images"

# Patient and General Study module attributes copied from the selected images' header; the
# Type 2 ones are written empty where that header lacks them.
_COPIED = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)
_TYPE_2 = {
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
}


@dataclass(frozen=True)
class ObjectRef:
    """A DICOM object of the study, by its series, class and instance."""

    series_instance_uid: str
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class KeyImageRef:
    """One selected image: an instance, and its frame (1-based) where it has several; with
    the presentation state it is to be shown with, if any (:mod:`pacs_app.dicom.gsps`)."""

    series_instance_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    frame: int = 1
    multiframe: bool = False
    presentation: ObjectRef | None = None


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _item(relationship: str, value_type: str, concept: Dataset) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [concept]
    return item


def copied_study(study_header: dict[str, Any]) -> Dataset:
    """The patient and study attributes of ``study_header`` (DICOM JSON), as a dataset."""
    wanted = {f"{tag_for_keyword(k):08X}": k for k in _COPIED}
    found = Dataset.from_json({t: v for t, v in study_header.items() if t in wanted})
    for keyword in _TYPE_2:
        if keyword not in found:
            setattr(found, keyword, "")
    return found


def key_object_selection(
    *,
    study_instance_uid: str,
    study_header: dict[str, Any],
    images: Sequence[KeyImageRef],
    description: str,
    observer: str,
    series_number: int,
    when: datetime,
) -> Dataset:
    """A Key Object Selection Document ("Of Interest") selecting ``images``, in a new series.

    ``study_header`` is the DICOM JSON of one of the images (its patient and study are the
    document's; where it lacks them, they are written empty); ``description`` becomes the
    Key Object Description, ``observer`` (a person's name) the author. An image with a
    presentation state is selected with it (PS3.3 C.18.4, the IMAGE item's Referenced SOP
    Sequence), and the state is listed in the evidence with the images. Raises
    ``ValueError`` when there is no image to select."""
    if not images:
        raise ValueError("a key object selection needs at least one image")
    when = when.astimezone(UTC)
    ds = copied_study(study_header)
    ds.StudyInstanceUID = study_instance_uid
    ds.SpecificCharacterSet = "ISO_IR 192"  # the header's text came decoded: write it as UTF-8
    ds.SOPClassUID = KOS_SOP_CLASS
    ds.SOPInstanceUID = generate_uid(prefix=None)  # 2.25.<UUID>: no registered root needed
    ds.InstanceCreationDate = ds.ContentDate = when.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.ContentTime = when.strftime("%H%M%S")
    ds.TimezoneOffsetFromUTC = "+0000"
    # Key Object Document Series and General Equipment
    ds.Modality = "KO"
    ds.SeriesInstanceUID = generate_uid(prefix=None)
    ds.SeriesNumber = series_number
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.Manufacturer = MANUFACTURER
    # Key Object Document
    ds.InstanceNumber = 1
    evidence = Dataset()
    evidence.StudyInstanceUID = ds.StudyInstanceUID
    evidence.ReferencedSeriesSequence = []
    by_series: dict[str, Dataset] = {}
    listed: set[str] = set()
    evident: list[KeyImageRef | ObjectRef] = list(images)
    evident += [image.presentation for image in images if image.presentation is not None]
    for image in evident:
        if image.sop_instance_uid in listed:
            continue  # another frame of an instance (or a state) already listed
        listed.add(image.sop_instance_uid)
        series = by_series.get(image.series_instance_uid)
        if series is None:
            series = by_series[image.series_instance_uid] = Dataset()
            series.SeriesInstanceUID = image.series_instance_uid
            series.ReferencedSOPSequence = []
            evidence.ReferencedSeriesSequence.append(series)
        series.ReferencedSOPSequence.append(reference(image, frame=False))
    ds.CurrentRequestedProcedureEvidenceSequence = [evidence]
    # SR Document Content: the title, its author, the description, then each image
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code("113000", "DCM", "Of Interest")]
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "2010"
    ds.ContentTemplateSequence = [template]
    observer_type = _item("HAS OBS CONTEXT", "CODE", _code("121005", "DCM", "Observer Type"))
    observer_type.ConceptCodeSequence = [_code("121006", "DCM", "Person")]
    observer_name = _item(
        "HAS OBS CONTEXT", "PNAME", _code("121008", "DCM", "Person Observer Name")
    )
    observer_name.PersonName = observer
    text = _item("CONTAINS", "TEXT", _code("113012", "DCM", "Key Object Description"))
    text.TextValue = description
    content = [observer_type, observer_name, text]
    for image in images:
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "IMAGE"
        item.ReferencedSOPSequence = [reference(image, frame=True)]
        content.append(item)
    ds.ContentSequence = content
    return ds


def reference(image: KeyImageRef | ObjectRef, *, frame: bool) -> Dataset:
    """``image`` in a Referenced SOP Sequence; with ``frame``, as an IMAGE content item (or
    a presentation state's Referenced Image Sequence) names it: its frame (of a multi-frame
    image) and its presentation state, if it has one."""
    item = Dataset()
    item.ReferencedSOPClassUID = image.sop_class_uid
    item.ReferencedSOPInstanceUID = image.sop_instance_uid
    if frame and isinstance(image, KeyImageRef):
        if image.multiframe:
            item.ReferencedFrameNumber = image.frame
        if image.presentation is not None:
            item.ReferencedSOPSequence = [reference(image.presentation, frame=False)]
    return item


def write(ds: Dataset, path: str | Path) -> None:
    """Save ``ds`` as a DICOM file (preamble, file meta, explicit VR little endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
