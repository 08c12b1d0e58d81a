"""Intake's HTTP shell without storage, to calibrate what HTTP costs on this machine.

The same application shell (``huhang.web.create_api``: problem handlers, body-size limit), the same request and
response models and a sync endpoint like ``services/intake/api.py``, but nothing is saved.
Served by ``python -m uvicorn bench._http_shell:app``.
"""

from __future__ import annotations

import hashlib
import uuid

from fastapi import APIRouter, status

from huhang.settings import Settings
from huhang.web import create_api
from services.intake.schemas import ReportCreate, ReportLinks, ReportPublic

router = APIRouter(prefix="/v1")


@router.post("/reports", status_code=status.HTTP_201_CREATED, response_model=ReportPublic)
def file_report(body: ReportCreate) -> ReportPublic:
    hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    report_id, case_id, child_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    return ReportPublic(
        report_id=report_id, case_id=case_id, child_id=child_id,
        links=ReportLinks(
            case=f"/v1/cases/{case_id}", timeline=f"/v1/cases/{case_id}/timeline",
            referrals=f"/v1/cases/{case_id}/referrals", child=f"/v1/children/{child_id}",
        ),
    )


app = create_api("Huhang intake HTTP shell (benchmark)", Settings(), [router])
