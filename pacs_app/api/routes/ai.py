"""AI analysis: queue a study's analysis, read its findings and draft, decide on findings."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from pacs_app.api.deps import AddressDep, CurrentActor, SessionDep
from pacs_app.models import Decision
from pacs_app.services import ai
from pacs_app.services.dto import ReportDraft
from pacs_app.storage import get_storage

router = APIRouter(tags=["ai"])


class DecisionRequest(BaseModel):
    decision: Decision
    text: str = ""


class AcceptDraftRequest(BaseModel):
    replace: bool = False


@router.post(
    "/ai/process-study/{study_id}",
    response_model=ai.AIJobPublic,
    status_code=202,
    summary="Queue (or re-run) the AI analysis of a study",
)
def process_study(
    study_id: str, actor: CurrentActor, session: SessionDep, address: AddressDep
) -> ai.AIJobPublic:
    """Answers at once with the job (queued, or the one already queued or running)."""
    return ai.request_analysis(session=session, actor=actor, study_id=study_id, address=address)


@router.get(
    "/ai/report/{study_id}",
    response_model=ai.AIReport,
    summary="The latest AI analysis: status, findings, draft, plugins",
)
def ai_report(study_id: str, actor: CurrentActor, session: SessionDep) -> ai.AIReport:
    return ai.ai_report(session=session, actor=actor, study_id=study_id)


@router.post("/ai/findings/{finding_id}/decision", response_model=ai.AIFindingPublic)
def decide(
    finding_id: int,
    body: DecisionRequest,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> ai.AIFindingPublic:
    return ai.decide(
        session=session,
        actor=actor,
        finding_id=finding_id,
        decision=body.decision,
        text=body.text,
        address=address,
    )


@router.get(
    "/ai/findings/{finding_id}/overlay",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
    summary="A finding's overlay image (e.g. segmented lung fields)",
)
def overlay(finding_id: int, actor: CurrentActor, session: SessionDep) -> Response:
    data = ai.evidence_image(
        session=session, actor=actor, finding_id=finding_id, storage=get_storage()
    )
    return Response(data, media_type="image/png", headers={"Cache-Control": "private"})


@router.post("/studies/{study_id}/report/ai-draft", response_model=ReportDraft)
def accept_ai_draft(
    study_id: str,
    body: AcceptDraftRequest,
    actor: CurrentActor,
    session: SessionDep,
    address: AddressDep,
) -> ReportDraft:
    """Start the report from the AI draft (marked as AI-generated; rejected findings left out)."""
    return ai.accept_draft(
        session=session, actor=actor, study_id=study_id, replace=body.replace, address=address
    )


@router.get("/ai/models", response_model=list[ai.LearnedModelPublic], summary="Learned models")
def list_models(actor: CurrentActor, session: SessionDep) -> list:
    return ai.list_models(session=session, actor=actor)
