"""Billing over HTTP: pricing is the administrators', bad prices are 422, invoices download."""

from __future__ import annotations

from datetime import UTC, datetime

from pacs_app.models import Currency, Role
from tests.api.test_studies_routes import _auth
from tests.factories import make_centre, make_user

TODAY = datetime.now(UTC).date().isoformat()


def test_pricing_over_http(api, session):
    centre = make_centre(session, "HTTP", currency=Currency.AED)
    make_user(session, Role.ADMIN, username="boss")
    make_user(session, Role.CENTRE, centre=centre, username="mgr-http")
    admin, mgr = _auth(api, "boss"), _auth(api, "mgr-http")
    rule = {
        "centre_id": centre.id,
        "modality": "MR",
        "currency": "AED",
        "price": "450.25",
        "stat_surcharge": "100",
        "effective_from": TODAY,
    }
    r = api.put("/billing/pricing", headers=admin, json=rule)
    assert r.status_code == 200, r.text
    assert r.json()["price"] == "AED 450.25" and r.json()["in_force"] is True
    again = api.put("/billing/pricing", headers=admin, json=rule)
    assert again.status_code == 409 and "already starts on" in again.json()["detail"]
    bad = api.put("/billing/pricing", headers=admin, json={**rule, "price": "-1"})
    assert bad.status_code == 422 and "negative" in bad.json()["detail"]
    wrong = api.put("/billing/pricing", headers=admin, json={**rule, "currency": "INR"})
    assert wrong.status_code == 422 and "billed in AED" in wrong.json()["detail"]
    assert api.get("/billing/pricing", headers=mgr).status_code == 403
    assert api.put("/billing/pricing", headers=mgr, json=rule).status_code == 403
    listed = api.get("/billing/pricing", headers=admin).json()
    assert [(x["modality"], x["price"]) for x in listed] == [("MR", "AED 450.25")]
    # the centre sees its (empty) invoices and records, not another centre's
    assert api.get("/billing/invoices", headers=mgr).json() == []
    other = make_centre(session, "OTHER")
    r = api.get(f"/billing/records?centre_id={other.id}", headers=mgr)
    assert r.status_code == 403
    assert api.get("/billing/records?month=2026-13", headers=admin).status_code == 422
