"""The AI draft report: Technique / Findings / Impression assembled from the findings.

Plain text, headed as an AI-generated preliminary draft with the plugins and versions that made
it. It is stored with the job, apart from the radiologist's report. An optional language model
(OpenAI-compatible endpoint, off by default) may rephrase it; without one, or when it fails,
the assembled draft stands.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass

from pacs_app.ai.base import Finding, SeriesVolume, Severity

log = logging.getLogger("pacs.ai.draft")


@dataclass(frozen=True)
class Draft:
    technique: str
    findings: str
    impression: str


def _mm(value: float | None) -> str:
    return f"{value:.2f} mm" if value else "unknown"


def technique(modality: str, volumes: list[SeriesVolume]) -> str:
    parts = []
    for v in volumes:
        rows, cols = v.pixels.shape[1:3]
        desc = f" ({v.description})" if v.description else ""
        spacing = v.spacing
        geometry = (
            f"{v.frames} image(s) of {cols}x{rows}, pixel spacing {_mm(spacing[1])} x "
            f"{_mm(spacing[2])}"
        )
        if v.frames > 1:
            geometry += f", slice spacing {_mm(spacing[0])}"
        parts.append(f"{v.modality or modality} series{desc}: {geometry}.")
    return "Technique: " + " ".join(parts) if parts else "Technique: no image series analysed."


def assemble(
    *,
    modality: str,
    body_part: str,
    volumes: list[SeriesVolume],
    findings: list[tuple[str, Finding]],  # (plugin "name version", finding), validated only
    plugins: list[str],
    warnings: list[str],
    template_name: str | None = None,
) -> Draft:
    heading = (
        "AI-GENERATED PRELIMINARY DRAFT - not verified by a radiologist. "
        f"Made by: {', '.join(plugins) or 'no plugin'}."
    )
    if template_name:
        heading += f" Layout of the template '{template_name}'."
    measured = [f.report_text for _, f in findings if f.report_text]
    quality = [f.title for _, f in findings if f.severity is Severity.WARNING]
    abnormal = [f.title for _, f in findings if f.severity is Severity.ABNORMAL]
    lines = [heading, "", technique(modality, volumes)]
    body = ["Findings:"]
    body += [f"- {text}" for text in measured] or ["- No automated measurement applies."]
    if quality:
        body += ["", "Image quality and acquisition:"] + [f"- {t}" for t in quality]
    if warnings:
        body += ["", "Not analysed:"] + [f"- {w}" for w in warnings]
    impression = []
    if abnormal:
        impression.append("Automated checks flag for review: " + "; ".join(abnormal) + ".")
    if quality:
        impression.append(f"{len(quality)} image-quality or acquisition issue(s) noted above.")
    impression.append(
        "No diagnosis is made by the automated analysis; the radiologist's reading decides."
    )
    exam = " ".join(p for p in (modality, body_part.lower()) if p)
    return Draft(
        technique="\n".join(lines),
        findings="\n".join(body),
        impression=f"{exam}: " + " ".join(impression) if exam else " ".join(impression),
    )


def rephrase(draft: Draft, *, url: str, model: str, timeout: float) -> tuple[Draft, str | None]:
    """Ask an OpenAI-compatible chat endpoint to rephrase the draft's findings and impression.

    Returns the new draft, or the original with the reason it was kept. Facts must not change:
    the prompt forbids adding any, and a reply that drops the AI-generated heading is refused.
    """
    prompt = (
        "Rephrase this preliminary radiology report draft in clear clinical English. Keep every "
        "number, unit and statement; add nothing; keep the first line unchanged. Answer with the "
        "same two sections, separated by a line '---'.\n\n"
        f"{draft.technique}\n\n{draft.findings}\n---\n{draft.impression}"
    )
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
        }
    ).encode()
    endpoint = url.rstrip("/") + "/chat/completions"
    if not endpoint.startswith(("http://", "https://")):
        return draft, "the language-model URL is not http(s); draft kept as assembled"
    request = urllib.request.Request(  # noqa: S310 (scheme checked above; URL from config)
        endpoint, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            reply = json.loads(response.read())
        text = reply["choices"][0]["message"]["content"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        log.warning("language-model rephrasing failed: %s", type(exc).__name__)
        return draft, f"language-model rephrasing failed ({type(exc).__name__}); draft kept"
    if "---" not in text or not text.strip().startswith("AI-GENERATED PRELIMINARY DRAFT"):
        return draft, "the language model changed the draft's heading; draft kept as assembled"
    head, impression = text.split("---", 1)
    return Draft(technique="", findings=head.strip(), impression=impression.strip()), None
