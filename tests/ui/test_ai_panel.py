"""The AI panel's rows: what the browser is told to fetch."""

from __future__ import annotations

import reflex as rx

from pacs_app.services.ai import AIFindingPublic, Decision
from pacs_app.ui.components.ai_panel import finding_row


def _finding(evidence: dict) -> AIFindingPublic:
    return AIFindingPublic(
        id=7,
        plugin="ct_measure",
        plugin_version="1.0.0",
        code="lung_volume",
        title="Lung volume",
        severity="info",
        value=4.2,
        unit="L",
        value_text="",
        method="threshold",
        limitations="none",
        series_uid="1.2.3",
        evidence=evidence,
        report_text="",
        decision=Decision.PENDING,
        decision_text="",
    )


def test_an_overlay_is_fetched_from_the_api_not_the_page_server(monkeypatch):
    """`reflex run` in development serves the pages on one port (3000) and the API on another
    (8000): a path relative to the page went to the page server and showed a broken image."""
    monkeypatch.setattr(rx.config.get_config(), "api_url", "http://localhost:8000")
    row = finding_row(_finding({"overlay": "overlay.png"}))
    assert row["overlay"] == "http://localhost:8000/ai/findings/7/overlay"
    assert finding_row(_finding({}))["overlay"] == ""


def test_on_one_port_an_overlay_is_fetched_from_the_pages_own_address(monkeypatch):
    """Production serves pages and API on one port: the overlay's URL is relative, so a
    browser on another machine fetches it from the server it reached, not its own localhost."""
    from pacs_app.config import settings

    config = rx.config.get_config()
    monkeypatch.setattr(config, "api_url", "http://localhost:8000")
    monkeypatch.setattr(config, "frontend_port", 8000)
    monkeypatch.setattr(config, "backend_port", 8000)
    monkeypatch.setattr(settings, "api_url", None)
    assert finding_row(_finding({"overlay": "o.png"}))["overlay"] == "/ai/findings/7/overlay"
    # an address given (API_URL) is used as given
    monkeypatch.setattr(settings, "api_url", "https://pacs.example.org")
    monkeypatch.setattr(config, "api_url", "https://pacs.example.org")
    row = finding_row(_finding({"overlay": "o.png"}))
    assert row["overlay"] == "https://pacs.example.org/ai/findings/7/overlay"
