"""Child directors (儿童主任) over HTTP: the roster per village, children's directors, trainings, coverage."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status

from huhang.access.guards import FORBIDDEN_DOC, ChildReader, ChildWriter, RosterKeeper, RosterReader
from huhang.headers import IdempotencyKey
from huhang.problems import PROBLEM_RESPONSES, problem_doc
from services.guardianship.director_schemas import (
    AssignmentPublic,
    CoveragePublic,
    DeparturePublic,
    DirectorAssign,
    DirectorCreate,
    DirectorDetail,
    DirectorLeave,
    DirectorPublic,
    TrainingCreate,
    TrainingPublic,
    UntrainedDirectorPublic,
    VillageCoveragePublic,
    WorkloadPublic,
)
from services.guardianship.directors import AppointDirector, ChildDirectors, RecordTraining, RosterEntry
from services.guardianship.ladder_schemas import china_today


def get_child_directors(request: Request) -> ChildDirectors:
    return request.app.state.child_directors


DirectorsDep = Annotated[ChildDirectors, Depends(get_child_directors)]



def _fingerprint(body: Any) -> str:
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


def _public(entry: RosterEntry) -> DirectorPublic:
    return DirectorPublic(
        director_id=entry.director_id, name=entry.name, phone=entry.phone, township=entry.township,
        village=entry.village, appointed_on=entry.appointed_on, left_on=entry.left_on, children=entry.children,
    )


router = APIRouter(prefix="/v1", tags=["child directors"])


@router.post(
    "/child-directors",
    status_code=status.HTTP_201_CREATED,
    response_model=DirectorDetail,
    responses=PROBLEM_RESPONSES,
    summary="Appoint a child director (儿童主任) to a village",
)
def appoint_director(
    body: DirectorCreate, directors: DirectorsDep, response: Response, _: RosterKeeper,
    idempotency_key: IdempotencyKey = None,
) -> DirectorDetail:
    appointed = directors.appoint(AppointDirector(
        name=body.name, phone=body.phone, township=body.township, village=body.village,
        appointed_on=body.appointed_on, fingerprint=_fingerprint(body), idempotency_key=idempotency_key,
    ))
    response.headers["Location"] = f"/v1/child-directors/{appointed.director_id}"
    if appointed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _detail(directors, appointed.director_id)


@router.get(
    "/child-directors",
    response_model=list[DirectorPublic],
    responses={422: PROBLEM_RESPONSES[422], **FORBIDDEN_DOC},
    summary="The roster of child directors, by township and village",
)
def list_directors(
    directors: DirectorsDep,
    _: RosterReader,
    township: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    village: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    include_left: Annotated[bool, Query(description="Also directors who left.")] = False,
) -> list[DirectorPublic]:
    return [_public(e) for e in directors.roster_entries(township, village, include_left)]


@router.get(
    "/child-directors/coverage",
    response_model=CoveragePublic,
    responses={422: PROBLEM_RESPONSES[422], **FORBIDDEN_DOC},
    summary="Villages without a director or needing another; directors without this year's training",
)
def coverage(
    directors: DirectorsDep,
    _: RosterReader,
    township: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="Default: this year.")] = None,
) -> CoveragePublic:
    """The plan: at least one director per village, another where a village has more than 30 covered children,
    and full-coverage training every year."""
    today = china_today()
    report = directors.coverage(year or today.year, today, township)
    villages = [
        VillageCoveragePublic(
            township=v.township, village=v.village, covered_children=v.covered_children, directors=v.directors,
            flags=list(v.flags),
        )
        for v in report.villages
    ]
    return CoveragePublic(
        year=report.year, township=report.township, as_of=report.as_of, villages=villages,
        villages_without_director=[v for v in villages if "no_director" in v.flags],
        villages_needing_another_director=[v for v in villages if "needs_another_director" in v.flags],
        untrained_directors=[
            UntrainedDirectorPublic(
                director_id=u.director_id, name=u.name, township=u.township, village=u.village,
                last_trained_on=u.last_trained_on,
            )
            for u in report.untrained_directors
        ],
        directors_in_office=report.directors_in_office,
    )


@router.get(
    "/child-directors/{director_id}",
    response_model=DirectorDetail,
    responses={**problem_doc(404, "Unknown director"), 422: PROBLEM_RESPONSES[422], **FORBIDDEN_DOC},
    summary="A child director with their children, workload and training record",
)
def get_director(director_id: UUID, directors: DirectorsDep, _: RosterReader) -> DirectorDetail:
    return _detail(directors, director_id)


@router.post(
    "/child-directors/{director_id}/leave",
    response_model=DeparturePublic,
    responses={**PROBLEM_RESPONSES, **problem_doc(404, "Unknown director"), **problem_doc(409, "Left already")},
    summary="A child director leaves the post; their children are released for reassignment",
)
def leave(
    director_id: UUID, body: DirectorLeave, directors: DirectorsDep, response: Response, _: RosterKeeper
) -> DeparturePublic:
    departure = directors.leave(director_id, body.left_on, body.reason.value if body.reason else None)
    if departure.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return DeparturePublic(
        director_id=departure.director_id, left_on=departure.left_on,
        released_children=list(departure.released_children),
    )


@router.post(
    "/child-directors/{director_id}/trainings",
    status_code=status.HTTP_201_CREATED,
    response_model=TrainingPublic,
    responses={**PROBLEM_RESPONSES, **problem_doc(404, "Unknown director"), **problem_doc(409, "Already recorded")},
    summary="Record a training in the director's training archive",
)
def record_training(
    director_id: UUID, body: TrainingCreate, directors: DirectorsDep, response: Response, _: RosterKeeper,
    idempotency_key: IdempotencyKey = None,
) -> TrainingPublic:
    recorded = directors.record_training(director_id, RecordTraining(
        trained_on=body.trained_on, course=body.course, hours=body.hours, fingerprint=_fingerprint(body),
        training_id=body.training_id, idempotency_key=idempotency_key,
    ))
    response.headers["Location"] = f"/v1/child-directors/{director_id}"
    if recorded.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return TrainingPublic(
        training_id=recorded.training_id, trained_on=body.trained_on, course=body.course, hours=body.hours,
    )


@router.put(
    "/children/{child_id}/child-director",
    response_model=AssignmentPublic,
    responses={**PROBLEM_RESPONSES, **problem_doc(404, "Unknown child"), **problem_doc(409, "The director left"),
               **FORBIDDEN_DOC},
    summary="Give a child its child director (a child has one; another moves it)",
)
def assign_director(child_id: UUID, body: DirectorAssign, directors: DirectorsDep, _: ChildWriter) -> AssignmentPublic:
    assigned = directors.assign(child_id, body.director_id)
    return AssignmentPublic(
        child_id=assigned.child_id, director_id=assigned.director_id,
        previous_director_id=assigned.previous_director_id,
    )


@router.get(
    "/children/{child_id}/child-director",
    response_model=AssignmentPublic,
    responses={422: PROBLEM_RESPONSES[422], **FORBIDDEN_DOC},
    summary="A child's child director (null when none)",
)
def get_child_director(child_id: UUID, directors: DirectorsDep, _: ChildReader) -> AssignmentPublic:
    return AssignmentPublic(child_id=child_id, director_id=directors.director_of(child_id))


def _detail(directors: ChildDirectors, director_id: UUID) -> DirectorDetail:
    d = directors.get(director_id)
    return DirectorDetail(
        director_id=d.director_id, name=d.name, phone=d.phone, township=d.township, village=d.village,
        appointed_on=d.appointed_on, left_on=d.left_on, children=len(d.children), leave_reason=d.leave_reason,
        child_ids=list(d.children),
        workload=WorkloadPublic(
            children=d.workload.children, frequent_visits=d.workload.frequent_visits,
            not_yet_known=d.workload.not_yet_known, merged_children=list(d.workload.merged_children),
        ),
        trainings=[
            TrainingPublic(training_id=t.training_id, trained_on=t.trained_on, course=t.course, hours=t.hours)
            for t in d.trainings
        ],
    )
