"""The AI draft: assembled from findings, and the optional rephrasing by a language model.

The language model is a small OpenAI-compatible HTTP server started in the test (a real
socket and real HTTP; only the model's answer is canned, since no model runs here)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from pacs_app.ai.base import Finding, SeriesVolume, Severity
from pacs_app.ai.draft import Draft, assemble, rephrase


def _volume() -> SeriesVolume:
    return SeriesVolume(
        series_uid="1.2.3",
        modality="CT",
        body_part="CHEST",
        description="Axial",
        pixels=np.zeros((3, 8, 8), np.float32),
        spacing=(2.5, 0.7, 0.7),
        positions=[None] * 3,
        orientations=[None] * 3,
        instance_numbers=[1, 2, 3],
        frame_sources=[("a", 0), ("b", 0), ("c", 0)],
        headers=[{}],
        photometric="MONOCHROME2",
        slice_thickness=2.5,
        value_range=(-1024, 3071),
        transfer_syntaxes=[],
    )


def _finding(severity: Severity, title: str, text: str = "") -> Finding:
    return Finding(
        code="x", title=title, severity=severity, method="m", limitations="l", report_text=text
    )


def test_the_draft_is_headed_and_keeps_quality_apart_from_measurements():
    draft = assemble(
        modality="CT",
        body_part="CHEST",
        volumes=[_volume()],
        findings=[
            ("ct_measure 1.0.0", _finding(Severity.INFO, "Body volume", "Body volume 5 L.")),
            ("series_qc 1.0.0", _finding(Severity.WARNING, "2 duplicate slices")),
        ],
        plugins=["ct_measure 1.0.0", "series_qc 1.0.0"],
        warnings=["Plugin x failed: boom"],
        template_name="CT chest",
    )
    assert draft.technique.startswith("AI-GENERATED PRELIMINARY DRAFT")
    assert "ct_measure 1.0.0, series_qc 1.0.0" in draft.technique
    assert "3 image(s) of 8x8" in draft.technique and "slice spacing 2.50 mm" in draft.technique
    assert "- Body volume 5 L." in draft.findings
    assert "- 2 duplicate slices" in draft.findings and "Plugin x failed" in draft.findings
    assert "No diagnosis is made" in draft.impression
    assert draft.impression.startswith("CT chest:")


class _Model(BaseHTTPRequestHandler):
    reply = ""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body["messages"][0]["role"] == "user"
        assert self.path == "/v1/chat/completions"
        out = json.dumps({"choices": [{"message": {"content": type(self).reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *_args):
        pass


@pytest.fixture
def model_url():
    server = HTTPServer(("127.0.0.1", 0), _Model)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


DRAFT = Draft(
    technique="AI-GENERATED PRELIMINARY DRAFT - x.\n\nTechnique: CT.",
    findings="Findings:\n- A.",
    impression="CT: none.",
)


def test_a_language_model_may_rephrase_but_not_drop_the_heading(model_url):
    _Model.reply = "AI-GENERATED PRELIMINARY DRAFT - x.\nTechnique: CT. Findings: A.\n---\nNone."
    new, problem = rephrase(DRAFT, url=model_url, model="m", timeout=5)
    assert problem is None and new.impression == "None." and "Findings: A." in new.findings
    _Model.reply = "Here is a better report.\n---\nNormal."
    kept, problem = rephrase(DRAFT, url=model_url, model="m", timeout=5)
    assert kept == DRAFT and "heading" in problem


def test_an_unreachable_model_leaves_the_draft_as_assembled():
    kept, problem = rephrase(DRAFT, url="http://127.0.0.1:9/v1", model="m", timeout=2)
    assert kept == DRAFT and "failed" in problem
    kept, problem = rephrase(DRAFT, url="file:///etc/passwd", model="m", timeout=2)
    assert kept == DRAFT and "not http" in problem
