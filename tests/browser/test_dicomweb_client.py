"""A DICOMweb client as other systems use it (dicomweb-client, the library behind many
research tools and gateways), against the running app: it finds a study by QIDO-RS and
retrieves it, its metadata and its frames by WADO-RS, with a user's token."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

from tests.browser.test_viewer import _token, _upload
from tests.dicom_factory import TESTDATA, make_overlaid_ct, make_series

pytestmark = pytest.mark.browser


def _client(app_url: str, username: str, password: str) -> DICOMwebClient:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {_token(app_url, username, password)}"
    return DICOMwebClient(url=f"{app_url}/dicomweb", session=session)


# The metadata gives values over 1 KiB by BulkDataURI; pydicom says so on reading it.
@pytest.mark.filterwarnings("ignore:No bulk data URI handler provided")
def test_a_dicomweb_client_finds_and_retrieves_a_study(app_url, tmp_path):
    pid = "DW-" + secrets.token_hex(4).upper()
    paths = make_series(tmp_path, 3, patient_name="DICOMWEB^CLIENT", patient_id=pid)
    _upload(app_url, paths)
    sent = [pydicom.dcmread(p) for p in paths]
    study_uid, series_uid = sent[0].StudyInstanceUID, sent[0].SeriesInstanceUID
    client = _client(app_url, "centre", "centre123")

    [study] = client.search_for_studies(search_filters={"PatientID": pid})
    found = pydicom.Dataset.from_json(study)
    assert found.StudyInstanceUID == study_uid and found.PatientName == "DICOMWEB^CLIENT"
    assert found.NumberOfStudyRelatedInstances == 3 and found.ModalitiesInStudy == "CT"
    assert client.search_for_studies(search_filters={"PatientID": pid + "X"}) == []
    [series] = client.search_for_series(study_uid)
    assert pydicom.Dataset.from_json(series).SeriesInstanceUID == series_uid
    instances = client.search_for_instances(study_uid, series_uid)
    assert sorted(pydicom.Dataset.from_json(i).InstanceNumber for i in instances) == [1, 2, 3]
    # and outside a study: series and instances of every study, by the patient's ID
    [series] = client.search_for_series(search_filters={"PatientID": pid})
    found = pydicom.Dataset.from_json(series)
    assert (found.SeriesInstanceUID, found.PatientName) == (series_uid, "DICOMWEB^CLIENT")
    instances = client.search_for_instances(search_filters={"PatientID": pid, "Modality": "CT"})
    assert {pydicom.Dataset.from_json(i).SOPInstanceUID for i in instances} == {
        ds.SOPInstanceUID for ds in sent
    }

    metadata = client.retrieve_study_metadata(study_uid)
    assert {pydicom.Dataset.from_json(m).SOPInstanceUID for m in metadata} == {
        ds.SOPInstanceUID for ds in sent
    }
    retrieved = client.retrieve_study(study_uid)
    assert sorted(ds.SOPInstanceUID for ds in retrieved) == sorted(ds.SOPInstanceUID for ds in sent)
    first = next(ds for ds in retrieved if ds.SOPInstanceUID == sent[0].SOPInstanceUID)
    assert np.array_equal(first.pixel_array, sent[0].pixel_array)
    [frame] = client.retrieve_instance_frames(
        study_uid, series_uid, sent[1].SOPInstanceUID, frame_numbers=[1]
    )
    assert frame == sent[1].pixel_array.astype("<i2").tobytes()

    # the tele-radiologist finds it in the pool of unassigned studies (the API tests show
    # that another centre's users find nothing of it)
    tele = _client(app_url, "radiologist", "radio123")
    assert len(tele.search_for_studies(search_filters={"PatientID": pid})) == 1


def test_a_dicomweb_client_stores_a_study(app_url, tmp_path):
    """STOW-RS, as a gateway or a research tool sends: the technician's instances become a
    study of their centre, found by QIDO-RS and listed for its users; a request with an
    instance of another study, sent to one study, is refused whole."""
    pid = "ST-" + secrets.token_hex(4).upper()
    paths = make_series(tmp_path / "s", 2, patient_name="STOW^CLIENT", patient_id=pid)
    sent = [pydicom.dcmread(p) for p in paths]
    study_uid = sent[0].StudyInstanceUID
    technician = _client(app_url, "technician", "tech123")

    stray = pydicom.dcmread(make_series(tmp_path / "x", 1, patient_id=pid)[0])
    with pytest.raises(requests.HTTPError) as refused:
        technician.store_instances([sent[0], stray], study_instance_uid=study_uid)
    assert refused.value.response.status_code == 409
    assert "another study" in refused.value.response.headers["Warning"]
    assert technician.search_for_studies(search_filters={"PatientID": pid}) == []

    answer = technician.store_instances(sent)
    assert answer.RetrieveURL.endswith(f"/dicomweb/studies/{study_uid}")
    assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [
        ds.SOPInstanceUID for ds in sent
    ]
    assert "FailedSOPSequence" not in answer

    centre = _client(app_url, "centre", "centre123")
    [study] = centre.search_for_studies(search_filters={"PatientID": pid})
    found = pydicom.Dataset.from_json(study)
    assert found.StudyInstanceUID == study_uid and found.PatientName == "STOW^CLIENT"
    assert found.NumberOfStudyRelatedInstances == 2
    retrieved = centre.retrieve_study(study_uid)
    assert np.array_equal(retrieved[0].pixel_array, sent[0].pixel_array)


@pytest.mark.skipif(not TESTDATA.exists(), reason=f"shared test data not found at {TESTDATA}")
def test_a_dicomweb_client_gets_a_compressed_instance_as_it_asks(app_url, tmp_path):
    """dicomweb-client asks for a study in Explicit VR Little Endian unless told otherwise, and
    for an instance as stored (``transfer-syntax=*``): a JPEG 2000 instance comes decoded,
    with the same pixels, or as it was sent."""
    ds = pydicom.dcmread(TESTDATA / "transfer_syntax" / "MR_small_jp2klossless.dcm")
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID = "TS-" + secrets.token_hex(4).upper()
    technician = _client(app_url, "technician", "tech123")
    technician.store_instances([ds])
    uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)

    plain = technician.retrieve_instance(
        *uids, media_types=(("application/dicom", ExplicitVRLittleEndian),)
    )
    assert plain.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(plain.pixel_array, ds.pixel_array)
    stored = technician.retrieve_instance(*uids)
    assert stored.file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert np.array_equal(stored.pixel_array, ds.pixel_array)
    [whole] = technician.retrieve_study(ds.StudyInstanceUID)
    assert whole.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_a_dicomweb_client_follows_a_bulk_data_uri(app_url, tmp_path):
    """A value the metadata leaves out (an overlay plane here) is fetched by its URI."""
    bits = np.zeros((128, 128), bool)
    bits[40:60, 20:100] = True
    ds = pydicom.dcmread(make_overlaid_ct(tmp_path / "ov.dcm", bits))
    technician = _client(app_url, "technician", "tech123")
    technician.store_instances([ds])
    meta = technician.retrieve_instance_metadata(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    )
    uri = urlsplit(meta["60003000"]["BulkDataURI"])
    # (dicomweb-client sends "Host: localhost" without the port, so the URI the server makes
    # from it names port 80: the tests in tests/api check the whole URI from a plain client)
    assert uri.path.endswith(f"/instances/{ds.SOPInstanceUID}/bulk/60003000")
    assert technician.retrieve_bulkdata(app_url + uri.path) == [ds[0x60003000].value]
