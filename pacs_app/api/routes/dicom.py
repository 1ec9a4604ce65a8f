"""`/dicom`: reference data about DICOM itself that the web viewer uses."""

from __future__ import annotations

from fastapi import APIRouter, Response

from pacs_app.api.deps import CurrentActor
from pacs_app.dicom import dictionary

router = APIRouter(prefix="/dicom", tags=["dicom"])


@router.get(
    "/dictionary",
    summary="The DICOM data dictionary's keywords (this server's extension, JSON)",
    description=(
        "Each standard tag's keyword (PS3.6), keyed GGGGEEEE in upper-case hexadecimal, and "
        "the masks of repeating groups (60xx3000: x stands for any hexadecimal digit), with "
        "the dictionary's version. The tag browser of the viewer names tags with it. It holds "
        "no patient data; like every route it needs a signed-in user."
    ),
)
def data_dictionary(actor: CurrentActor) -> Response:
    return Response(
        dictionary.keywords_json(),
        media_type="application/json",
        headers={"Cache-Control": "private, max-age=86400"},
    )
