"""Use cases of content: copies, revisions and their workflow, the lint, templates, briefs and
experiments. Raises shared.errors classes; stages events with shared.outbox.stage."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.content import repository as repo
from services.content.diffing import diff
from services.content.lint import LintInput, LintInputError, lint
from services.content.readout import sentences
from services.content.schemas import (
    AuditOut,
    BriefOut,
    CopyCreate,
    CopyOut,
    CopyUpdate,
    DecideIn,
    DiffOut,
    ExperimentCreate,
    ExperimentOut,
    LintIn,
    Page,
    RenderIn,
    RenderOut,
    ReviewerIn,
    ReviewerOut,
    RevisionOut,
    TransitionIn,
    VariableIn,
)
from services.content.stats import DecisionRule, Variant, evaluate, required_sample
from services.content.templating import (
    TemplateError,
    VariableSpec,
    check_source,
    declared_names,
    render,
    validate_variables,
)
from shared.auth import Principal
from shared.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from shared.events.campaigns import CampaignCreatedV1, CampaignUpdatedV1, TaskDueV1
from shared.events.content import CopyPublishedV1, ExperimentDecidedV1, VariantV1
from shared.events.diagnosis import FindingClosedV1, FindingOpenedV1, FindingUpdatedV1
from shared.events.ingest import (
    ApiKeyCreatedV1,
    MetricsDeletedV1,
    MetricsIngestedV1,
    StoreRegisteredV1,
    StoreUpdatedV1,
)
from shared.outbox import stage

COUNT_METRICS = ("impressions", "clicks", "orders")
CJK_LOCALES = ("zh-CN", "zh-TW", "ja")
# Diagnosis findings that mean "fewer people click": they open a refresh brief.
CTR_FINDING_CODES = frozenset({"ctr_drop", "click_through_drop", "ctr_decline", "ctr_anomaly"})
REFRESH_DAYS = {"critical": 1, "high": 2, "medium": 3, "low": 5}


class IllegalTransition(Conflict):
    code, title = "illegal-transition", "This action is not allowed in the copy's state"


class LintErrors(DomainError):
    status, code, title = 422, "lint-errors", "The copy has lint errors"


class TemplateRefused(DomainError):
    status, code, title = 422, "template-refused", "The template was refused"


def _now() -> datetime:
    return datetime.now(UTC)


def user_uuid(user_id: str) -> uuid.UUID:
    """Events carry user ids as UUIDs; the bootstrap admin's id is not one, so it gets a stable
    name-based UUID."""
    try:
        return uuid.UUID(user_id)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"storeops:user:{user_id}")


def _invalid(loc: list[Any], msg: str) -> ValidationFailed:
    return ValidationFailed([{"loc": loc, "msg": msg, "type": "value_error"}])


# ---- lint ------------------------------------------------------------------------------------


def _specs(variables: list[dict[str, Any]] | None) -> list[VariableSpec]:
    return [VariableSpec(**v) for v in variables or []]


def _run_lint(
    *,
    title: str,
    body: str,
    locale: str,
    copy_type: str | None,
    channels: list[str] | None,
    market: str | None,
    loc: list[Any],
    packs: list[str] | None = None,
    marketing: bool = True,
    signature: str | None = None,
    product_category: str | None = None,
) -> dict[str, Any]:
    try:
        result = lint(
            LintInput(
                product_category=product_category,
                body=body,
                title=title,
                locale=locale,
                copy_type=copy_type,
                channels=channels,
                packs=packs,
                market=market,
                marketing=marketing,
                signature=signature,
            )
        )
    except LintInputError as exc:
        raise _invalid([*loc, exc.loc], exc.msg) from exc
    return result.as_dict()


def _lint_copy(
    copy: Any, title: str, body: str, variables: list[dict[str, Any]] | None, market: str | None
) -> dict[str, Any]:
    """A template copy is linted as it would go out: rendered with each variable's example."""
    if variables:
        specs = _specs(variables)
        sample = {s.name: s.sample() for s in specs}
        try:
            title, body = render(title, sample), render(body, sample)
        except TemplateError as exc:
            raise TemplateRefused(exc.msg, errors=[{"loc": ["body"], "msg": exc.msg}]) from exc
    return _run_lint(
        title=title,
        body=body,
        locale=copy.locale,
        copy_type=copy.type,
        channels=copy.channels,
        market=market,
        loc=["body"],
        product_category=getattr(copy, "product_category", None),
    )


def lint_errors(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The lint's errors as problem+json errors [{loc, msg}], loc naming the field."""
    out = []
    for i in report["issues"]:
        if i["severity"] != "error":
            continue
        msg = i["message"] + (f": {i['text']!r}" if i.get("text") else "")
        if i.get("citation"):
            msg += f" ({i['citation']})"
        out.append(
            {
                "loc": ["body", i.get("field") or "body"],
                "msg": msg,
                "type": i.get("rule") or i["code"],
                "channel": i.get("channel"),
                "start": i.get("start"),
                "end": i.get("end"),
            }
        )
    return [{k: v for k, v in e.items() if v is not None} for e in out]


def lint_text(body: LintIn) -> dict[str, Any]:
    text = body.body if body.body is not None else body.text
    if text is None:
        raise _invalid(["body", "body"], "send the text to lint as body (or text)")
    return _run_lint(
        title=body.title,
        body=text,
        locale=body.locale,
        copy_type=body.type,
        channels=body.channels,
        market=body.market,
        loc=["body"],
        packs=body.packs,
        marketing=body.marketing,
        signature=body.signature,
        product_category=body.product_category,
    )


def _check_template(title: str, body: str, variables: list[VariableIn] | None) -> None:
    if not variables:
        return
    names = [v.name for v in variables]
    if len(set(names)) != len(names):
        raise _invalid(["body", "variables"], "variable names must be unique")
    used: set[str] = set()
    for fld, src in (("title", title), ("body", body)):
        try:
            check_source(src)
            used |= declared_names(src)
        except TemplateError as exc:
            raise TemplateRefused(exc.msg, errors=[{"loc": ["body", fld], "msg": exc.msg}]) from exc
    undeclared = sorted(used - set(names))
    if undeclared:
        raise _invalid(["body", "variables"], f"the template uses undeclared {undeclared}")


# ---- stores (from ingest) --------------------------------------------------------------------


async def on_store(session: AsyncSession, event: StoreRegisteredV1 | StoreUpdatedV1) -> None:
    await repo.upsert_store(
        session,
        {
            "tenant_id": event.tenant_id,
            "store_id": event.store_id,
            "name": event.name,
            "market": event.market,
            "timezone": event.timezone,
            "status": event.status,
            "updated_at": event.occurred_at,
        },
    )


async def _store(session: AsyncSession, principal: Principal, store_id: str) -> Any:
    principal.check_store(store_id)
    store = await repo.get_store(session, principal.tenant_id, store_id)
    if store is None:
        raise NotFound(f"Store {store_id!r} not found")
    return store


# ---- copies ----------------------------------------------------------------------------------


async def _copy(session: AsyncSession, principal: Principal, copy_id: str) -> Any:
    copy = await repo.get_copy(session, principal.tenant_id, copy_id)
    if copy is None or not principal.can_see_store(copy.store_id):
        raise NotFound(f"Copy {copy_id!r} not found")
    return copy


def _copy_out(copy: Any, rev: Any) -> CopyOut:
    return CopyOut(
        id=copy.id,
        store_id=copy.store_id,
        campaign_id=copy.campaign_id,
        brief_id=copy.brief_id,
        type=copy.type,
        locale=copy.locale,
        status=copy.status,
        revision=copy.revision,
        published_revision=copy.published_revision,
        channels=copy.channels,
        product_category=copy.product_category,
        title=rev.title,
        body=rev.body,
        variables=rev.variables,
        lint=rev.lint,
        created_by=copy.created_by,
        created_at=copy.created_at,
        updated_at=copy.updated_at,
    )


async def _audit(
    session: AsyncSession,
    principal: Principal,
    copy: Any,
    action: str,
    to_status: str,
    revision: int,
    comment: str | None = None,
    from_status: str | None = None,
) -> None:
    await repo.insert_audit(
        session,
        {
            "tenant_id": principal.tenant_id,
            "copy_id": copy.id,
            "action": action,
            "from_status": from_status,
            "to_status": to_status,
            "revision": revision,
            "actor": principal.user_id,
            "key_id": principal.key_id,
            "role": principal.role,
            "comment": comment,
            "at": _now(),
        },
    )


async def create_copy(session: AsyncSession, principal: Principal, body: CopyCreate) -> CopyOut:
    store = await _store(session, principal, body.store_id)
    if store.status == "archived":
        raise Conflict(f"Store {body.store_id!r} is archived: no new copy")
    _check_template(body.title, body.body, body.variables)
    brief = None
    if body.brief_id is not None:
        brief = await repo.get_brief(session, principal.tenant_id, str(body.brief_id))
        if brief is None or brief.store_id != body.store_id:
            raise _invalid(["body", "brief_id"], "no such brief for this store")
    if body.campaign_id is not None:
        # Another tenant's campaign (or none at all) is not an id this copy may carry.
        campaign = await repo.get_campaign(session, principal.tenant_id, str(body.campaign_id))
        if campaign is None or campaign.store_id != body.store_id:
            raise _invalid(["body", "campaign_id"], "no such campaign for this store")
        if brief is None:
            # A copy for the campaign and copy type of an open brief answers that brief: no
            # brief id to pass by hand.
            brief = await repo.open_brief_for(
                session, principal.tenant_id, body.store_id, str(body.campaign_id), body.type
            )
    now = _now()
    copy_id = str(uuid.uuid4())
    values = {
        "id": copy_id,
        "tenant_id": principal.tenant_id,
        "store_id": body.store_id,
        "campaign_id": str(body.campaign_id) if body.campaign_id else None,
        "brief_id": brief.id if brief is not None else None,
        "type": body.type,
        "locale": body.locale,
        "status": "draft",
        "revision": 1,
        "published_revision": None,
        "channels": body.channels,
        "product_category": body.product_category,
        "created_by": principal.user_id,
        "created_at": now,
        "updated_at": now,
    }
    variables = [v.model_dump() for v in body.variables] if body.variables else None
    copy = _Row(values)
    report = _lint_copy(copy, body.title, body.body, variables, store.market)
    await repo.insert_copy(session, values)
    await repo.insert_revision(
        session,
        {
            "copy_id": copy_id,
            "revision": 1,
            "title": body.title,
            "body": body.body,
            "variables": variables,
            "lint": report,
            "lint_errors": report["errors"],
            "note": None,
            "created_by": principal.user_id,
            "created_at": now,
        },
    )
    await _audit(session, principal, copy, "create", "draft", 1)
    if brief is not None and brief.status == "open":
        await repo.update_brief(session, brief.id, {"status": "in_progress", "updated_at": now})
    return await get_copy(session, principal, copy_id)


class _Row:
    """Attribute access over a dict, for values not read back from the database yet."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


async def get_copy(session: AsyncSession, principal: Principal, copy_id: str) -> CopyOut:
    copy = await _copy(session, principal, copy_id)
    rev = await repo.get_revision(session, copy.id, copy.revision)
    return _copy_out(copy, rev)


async def list_copies(
    session: AsyncSession,
    principal: Principal,
    *,
    filters: dict[str, Any],
    limit: int,
    cursor: str | None,
) -> Page[CopyOut]:
    rows = await repo.list_copies(
        session,
        principal.tenant_id,
        store_ids=principal.store_ids,
        filters=filters,
        after=cursor,
        limit=limit + 1,
    )
    items = []
    for copy in rows[:limit]:
        rev = await repo.get_revision(session, copy.id, copy.revision)
        items.append(_copy_out(copy, rev))
    return Page(items=items, next_cursor=rows[limit - 1].id if len(rows) > limit else None)


async def update_copy(
    session: AsyncSession, principal: Principal, copy_id: str, body: CopyUpdate
) -> CopyOut:
    """Every edit is a new immutable revision; an edit after review sends the copy back to
    draft (what was reviewed is no longer what would go out)."""
    copy = await _copy(session, principal, copy_id)
    if copy.status == "archived":
        raise IllegalTransition("An archived copy cannot be edited")
    current = await repo.get_revision(session, copy.id, copy.revision)
    title = body.title if body.title is not None else current.title
    text = body.body if body.body is not None else current.body
    if body.variables is not None:
        variables = [v.model_dump() for v in body.variables] or None
    else:
        variables = current.variables
    _check_template(title, text, [VariableIn(**v) for v in variables] if variables else None)
    if title == current.title and text == current.body and variables == current.variables:
        raise IllegalTransition("Nothing changed: no new revision")
    store = await repo.get_store(session, principal.tenant_id, copy.store_id)
    report = _lint_copy(copy, title, text, variables, store.market if store else None)
    now = _now()
    revision = copy.revision + 1
    await repo.insert_revision(
        session,
        {
            "copy_id": copy.id,
            "revision": revision,
            "title": title,
            "body": text,
            "variables": variables,
            "lint": report,
            "lint_errors": report["errors"],
            "note": body.note,
            "created_by": principal.user_id,
            "created_at": now,
        },
    )
    await repo.update_copy(
        session, copy.id, {"revision": revision, "status": "draft", "updated_at": now}
    )
    await _audit(
        session, principal, copy, "edit", "draft", revision, body.note, from_status=copy.status
    )
    return await get_copy(session, principal, copy_id)


def _revision_out(rev: Any) -> RevisionOut:
    return RevisionOut(
        revision=rev.revision,
        title=rev.title,
        body=rev.body,
        variables=rev.variables,
        note=rev.note,
        created_by=rev.created_by,
        created_at=rev.created_at,
        lint=rev.lint,
    )


async def list_revisions(
    session: AsyncSession, principal: Principal, copy_id: str
) -> list[RevisionOut]:
    copy = await _copy(session, principal, copy_id)
    return [_revision_out(r) for r in await repo.list_revisions(session, copy.id)]


async def get_revision(
    session: AsyncSession, principal: Principal, copy_id: str, revision: int
) -> RevisionOut:
    copy = await _copy(session, principal, copy_id)
    rev = await repo.get_revision(session, copy.id, revision)
    if rev is None:
        raise NotFound(f"Revision {revision} of copy {copy_id!r} not found")
    return _revision_out(rev)


async def diff_revisions(
    session: AsyncSession, principal: Principal, copy_id: str, old: int | None, new: int | None
) -> DiffOut:
    copy = await _copy(session, principal, copy_id)
    new = new or copy.revision
    old = old or max(1, new - 1)
    a = await repo.get_revision(session, copy.id, old)
    b = await repo.get_revision(session, copy.id, new)
    if a is None or b is None:
        raise NotFound(f"Revision {old if a is None else new} of copy {copy_id!r} not found")
    unit = "characters" if copy.locale in CJK_LOCALES else "words"
    return DiffOut(
        copy_id=copy.id,
        from_revision=old,
        to_revision=new,
        unit={"latin": "words", "cjk": "characters", "locale": unit},
        title=diff(a.title, b.title),
        body=diff(a.body, b.body),
    )


async def list_audit(session: AsyncSession, principal: Principal, copy_id: str) -> list[AuditOut]:
    copy = await _copy(session, principal, copy_id)
    rows = await repo.list_audit(session, copy.id)
    names = await repo.user_names(session, principal.tenant_id, {r.actor for r in rows})
    return [
        AuditOut(
            action=r.action,
            from_status=r.from_status,
            to_status=r.to_status,
            revision=r.revision,
            actor=r.actor,
            actor_name=names.get(r.actor),
            role=r.role,
            comment=r.comment,
            at=r.at,
        )
        for r in rows
    ]


# ---- reviewers and names ---------------------------------------------------------------------


async def on_api_key(session: AsyncSession, event: ApiKeyCreatedV1) -> None:
    """The directory of names the audit shows: the latest name a key event carried."""
    if event.user_name:
        await repo.upsert_user(
            session,
            {
                "tenant_id": event.tenant_id,
                "user_id": str(event.user_id),
                "name": event.user_name,
                "updated_at": event.occurred_at,
            },
        )


async def _reviewers_out(session: AsyncSession, tenant_id: str) -> list[ReviewerOut]:
    rows = await repo.list_reviewers(session, tenant_id)
    names = await repo.user_names(session, tenant_id, {r.user_id for r in rows})
    return [
        ReviewerOut(
            user_id=r.user_id,
            name=names.get(r.user_id),
            note=r.note,
            added_by=r.added_by,
            added_at=r.added_at,
        )
        for r in rows
    ]


async def list_reviewers(session: AsyncSession, principal: Principal) -> list[ReviewerOut]:
    return await _reviewers_out(session, principal.tenant_id)


async def add_reviewer(
    session: AsyncSession, principal: Principal, body: ReviewerIn
) -> list[ReviewerOut]:
    await repo.upsert_reviewer(
        session,
        {
            "tenant_id": principal.tenant_id,
            "user_id": body.user_id,
            "note": body.note,
            "added_by": principal.user_id,
            "added_at": _now(),
        },
    )
    return await _reviewers_out(session, principal.tenant_id)


async def remove_reviewer(session: AsyncSession, principal: Principal, user_id: str) -> None:
    if not await repo.delete_reviewer(session, principal.tenant_id, user_id):
        raise NotFound(f"User {user_id!r} is not a reviewer")


async def _check_may_act(session: AsyncSession, principal: Principal, action: str) -> None:
    """Approving and rejecting are review decisions: an admin, or a user the tenant's admins
    assigned as a reviewer (whatever the key's role: a legal reviewer may hold a viewer key).
    Writing-side actions (submit, publish, archive) need an operator."""
    if action in ("approve", "reject"):
        if principal.role == "admin":
            return
        if await repo.is_reviewer(session, principal.tenant_id, principal.user_id):
            return
        raise Forbidden(
            f"To {action} a copy you must be an admin or an assigned reviewer "
            "(admins assign reviewers at /v1/reviewers)"
        )
    principal.require("operator")


# The workflow: action -> (states it may start from, state it leads to).
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "submit": (frozenset({"draft"}), "in_review"),
    "approve": (frozenset({"in_review"}), "approved"),
    "reject": (frozenset({"in_review"}), "draft"),
    "publish": (frozenset({"approved"}), "published"),
    "archive": (frozenset({"draft", "in_review", "approved", "published"}), "archived"),
}


async def transition(
    session: AsyncSession, principal: Principal, copy_id: str, body: TransitionIn
) -> CopyOut:
    copy = await _copy(session, principal, copy_id)
    await _check_may_act(session, principal, body.action)
    sources, target = TRANSITIONS[body.action]
    if copy.status not in sources:
        raise IllegalTransition(
            f"Cannot {body.action} a copy that is {copy.status}",
            status_now=copy.status,
            allowed_from=sorted(sources),
        )
    if body.action == "reject" and not (body.comment and body.comment.strip()):
        raise _invalid(["body", "comment"], "a rejection needs a comment for the writer")
    if body.action == "approve":
        writers = await repo.revision_authors(session, copy.id)
        if principal.user_id in writers:
            raise IllegalTransition(
                "A writer cannot approve their own copy: ask another reviewer",
                status_now=copy.status,
            )
    now = _now()
    values: dict[str, Any] = {"status": target, "updated_at": now}
    if body.action in ("submit", "publish"):
        rev = await repo.get_revision(session, copy.id, copy.revision)
        store = await repo.get_store(session, principal.tenant_id, copy.store_id)
        # Re-lint: the rule packs may have changed since the revision was written. Refused at
        # submit too, so a reviewer never spends time on copy that could not go out.
        report = _lint_copy(
            copy, rev.title, rev.body, rev.variables, store.market if store else None
        )
        if report["errors"]:
            verb = "Submitting for review" if body.action == "submit" else "Publishing"
            raise LintErrors(
                f"{verb} is refused while the lint reports {report['errors']} error(s)",
                errors=lint_errors(report),
                issues=[i for i in report["issues"] if i["severity"] == "error"],
            )
    if body.action == "publish":
        values["published_revision"] = copy.revision
        await stage(
            session,
            CopyPublishedV1(
                tenant_id=principal.tenant_id,
                store_id=copy.store_id,
                copy_id=uuid.UUID(copy.id),
                revision=copy.revision,
                campaign_id=uuid.UUID(copy.campaign_id) if copy.campaign_id else None,
                copy_type=copy.type,
                locale=copy.locale,
                title=rev.title,
                body=rev.body,
                published_by=user_uuid(principal.user_id),
            ),
        )
        brief_id = copy.brief_id
        if brief_id is None and copy.campaign_id:
            # A copy written before its brief arrived still answers it on publish.
            brief = await repo.open_brief_for(
                session, principal.tenant_id, copy.store_id, copy.campaign_id, copy.type
            )
            if brief is not None:
                brief_id = values["brief_id"] = brief.id
        if brief_id:
            await repo.update_brief(session, brief_id, {"status": "done", "updated_at": now})
    await repo.update_copy(session, copy.id, values)
    await _audit(
        session,
        principal,
        copy,
        body.action,
        target,
        copy.revision,
        body.comment,
        from_status=copy.status,
    )
    return await get_copy(session, principal, copy_id)


async def render_copy(
    session: AsyncSession, principal: Principal, copy_id: str, body: RenderIn
) -> RenderOut:
    copy = await _copy(session, principal, copy_id)
    rev = await repo.get_revision(session, copy.id, copy.revision)
    specs = _specs(rev.variables)
    try:
        values = validate_variables(specs, body.variables)
        title, text = render(rev.title, values), render(rev.body, values)
    except TemplateError as exc:
        loc = ["body", *exc.loc] if exc.loc else ["body"]
        raise TemplateRefused(
            exc.msg, errors=[{"loc": loc, "msg": exc.msg}], kind=exc.kind
        ) from exc
    store = await repo.get_store(session, principal.tenant_id, copy.store_id)
    report = _run_lint(
        title=title,
        body=text,
        locale=copy.locale,
        copy_type=copy.type,
        channels=copy.channels,
        market=store.market if store else None,
        loc=["body"],
    )
    return RenderOut(copy_id=copy.id, revision=copy.revision, title=title, body=text, lint=report)


# ---- briefs ----------------------------------------------------------------------------------


async def _upsert_brief(
    session: AsyncSession, tenant_id: str, source_key: str, values: dict[str, Any]
) -> None:
    now = _now()
    existing = await repo.get_brief_by_source(session, tenant_id, source_key)
    if existing is None:
        await repo.insert_brief(
            session,
            {
                "id": str(uuid.uuid4()),
                "tenant_id": tenant_id,
                "source_key": source_key,
                "status": "open",
                "copy_ids": [],
                "created_at": now,
                "updated_at": now,
                **values,
            },
        )
    else:
        await repo.update_brief(session, existing.id, {**values, "updated_at": now})


async def on_campaign(session: AsyncSession, event: CampaignCreatedV1 | CampaignUpdatedV1) -> None:
    """A campaign's copy tasks become briefs due when the task is; tasks that left the plan
    (or a cancelled campaign) cancel their briefs that nobody started."""
    campaign_id = str(event.campaign_id)
    await repo.upsert_campaign(
        session,
        {
            "tenant_id": event.tenant_id,
            "campaign_id": campaign_id,
            "store_id": event.store_id,
            "status": event.status,
        },
    )
    keep: set[str] = set()
    if event.status != "cancelled":
        for task in event.tasks:
            if task.copy_type is None:
                continue
            key = f"campaign:{campaign_id}:{task.task_id}"
            keep.add(key)
            await _upsert_brief(
                session,
                event.tenant_id,
                key,
                {
                    "store_id": event.store_id,
                    "kind": "campaign",
                    "campaign_id": campaign_id,
                    "task_id": task.task_id,
                    "copy_type": task.copy_type,
                    "owner": task.owner_role,
                    "title": f"{event.name}: {task.name}",
                    "detail": f"{task.copy_type} copy for {event.name}, {task.start} to {task.due}",
                    "due": task.due,
                },
            )
    for brief in await repo.briefs_of_campaign(session, event.tenant_id, campaign_id):
        if brief.source_key not in keep and brief.status == "open":
            await repo.update_brief(
                session, brief.id, {"status": "cancelled", "updated_at": _now()}
            )


async def on_task_due(session: AsyncSession, event: TaskDueV1) -> None:
    if event.copy_type is None:
        return
    key = f"campaign:{event.campaign_id}:{event.task_id}"
    await _upsert_brief(
        session,
        event.tenant_id,
        key,
        {
            "store_id": event.store_id,
            "kind": "campaign",
            "campaign_id": str(event.campaign_id),
            "task_id": event.task_id,
            "copy_type": event.copy_type,
            "owner": event.owner_role,
            "title": event.name,
            "due": event.due,
        },
    )


def is_ctr_finding(event: FindingOpenedV1 | FindingUpdatedV1 | FindingClosedV1) -> bool:
    return event.metric == "ctr" or event.code in CTR_FINDING_CODES


async def on_finding(
    session: AsyncSession, event: FindingOpenedV1 | FindingUpdatedV1 | FindingClosedV1
) -> None:
    """Falling click-through: a refresh brief for the copies involved (the finding's copy_id, or
    the store's published copies when the finding is not about one copy). The finding's
    closing cancels the brief nobody started; its reopening (finding_updated back to open, or
    raised again) restores that brief to the status it was cancelled from."""
    if not is_ctr_finding(event):
        return
    key = f"finding:{event.finding_id}"
    existing = await repo.get_brief_by_source(session, event.tenant_id, key)
    if isinstance(event, FindingClosedV1) or event.status == "resolved":
        if existing is not None and existing.status == "open":
            await repo.update_brief(
                session,
                existing.id,
                {"status": "cancelled", "cancelled_from": existing.status, "updated_at": _now()},
            )
        return
    if existing is not None and existing.status == "cancelled" and existing.cancelled_from:
        await repo.update_brief(
            session,
            existing.id,
            {"status": existing.cancelled_from, "cancelled_from": None, "updated_at": _now()},
        )
    if "copy_id" in event.dimensions:
        copy_ids = [event.dimensions["copy_id"]]
    else:
        copy_ids = [
            r.id for r in await repo.published_copies(session, event.tenant_id, event.store_id)
        ]
    where = ", ".join(f"{k}={v}" for k, v in sorted(event.dimensions.items())) or "store total"
    await _upsert_brief(
        session,
        event.tenant_id,
        key,
        {
            "store_id": event.store_id,
            "kind": "refresh",
            "finding_id": str(event.finding_id),
            "copy_type": None,
            "owner": event.owner,
            "title": f"Refresh copy: {event.title}",
            "detail": f"{event.action} ({where}; severity {event.severity})",
            "due": event.date + dt.timedelta(days=REFRESH_DAYS[event.severity]),
            "copy_ids": copy_ids,
        },
    )


def _brief_out(b: Any, answered: list[str]) -> BriefOut:
    return BriefOut(
        id=b.id,
        store_id=b.store_id,
        kind=b.kind,
        campaign_id=b.campaign_id,
        task_id=b.task_id,
        finding_id=b.finding_id,
        copy_type=b.copy_type,
        owner=b.owner,
        title=b.title,
        detail=b.detail,
        due=b.due,
        status=b.status,
        copy_ids=b.copy_ids,
        answered_by=answered,
        created_at=b.created_at,
        updated_at=b.updated_at,
    )


async def list_briefs(
    session: AsyncSession,
    principal: Principal,
    *,
    filters: dict[str, Any],
    limit: int,
    cursor: str | None,
) -> Page[BriefOut]:
    rows = await repo.list_briefs(
        session,
        principal.tenant_id,
        store_ids=principal.store_ids,
        filters=filters,
        after=cursor,
        limit=limit + 1,
    )
    answers = await repo.copies_answering(session, principal.tenant_id, [b.id for b in rows])
    return Page(
        items=[_brief_out(b, answers.get(b.id, [])) for b in rows[:limit]],
        next_cursor=rows[limit - 1].id if len(rows) > limit else None,
    )


async def get_brief(session: AsyncSession, principal: Principal, brief_id: str) -> BriefOut:
    b = await repo.get_brief(session, principal.tenant_id, brief_id)
    if b is None or not principal.can_see_store(b.store_id):
        raise NotFound(f"Brief {brief_id!r} not found")
    answers = await repo.copies_answering(session, principal.tenant_id, [b.id])
    return _brief_out(b, answers.get(b.id, []))


# ---- experiments -----------------------------------------------------------------------------


def _metric_row(event: MetricsIngestedV1, row: Any) -> dict[str, Any]:
    dims = dict(row.dimensions)
    return {
        "tenant_id": event.tenant_id,
        "store_id": event.store_id,
        "copy_id": dims["copy_id"],
        "date": row.date,
        "metric": row.metric,
        "dims_key": json.dumps(dims, sort_keys=True, separators=(",", ":")),
        "n_dims": len(dims),
        "value": float(row.value),
    }


async def on_metrics(session: AsyncSession, event: MetricsIngestedV1) -> None:
    rows = [
        _metric_row(event, r)
        for r in event.rows
        if r.metric in COUNT_METRICS and r.dimensions.get("copy_id")
    ]
    if not rows:
        return
    await repo.upsert_copy_metrics(session, rows)
    touched = {r["copy_id"] for r in rows}
    for exp in await repo.running_experiments(session, event.tenant_id, event.store_id):
        if touched & set(exp.copy_ids):
            evaluation = await _evaluate(session, exp)
            # Only a planned look is analysed, and each once: data in between change nothing.
            if evaluation.look > exp.looks_done:
                await repo.update_experiment(session, exp.id, {"looks_done": evaluation.look})
                if evaluation.decision is not None:
                    await _decide(session, exp, evaluation, evaluation.decision)


async def on_metrics_deleted(session: AsyncSession, event: MetricsDeletedV1) -> None:
    """A correction deleted copy rows in ingest: delete ours (experiments read the rest)."""
    keys = [
        (
            r.dimensions["copy_id"],
            r.date,
            r.metric,
            json.dumps(dict(r.dimensions), sort_keys=True, separators=(",", ":")),
        )
        for r in event.rows
        if r.dimensions.get("copy_id")
    ]
    if keys:
        await repo.delete_copy_metrics(session, event.tenant_id, event.store_id, keys)


def _rule(exp: Any) -> DecisionRule:
    return DecisionRule(**exp.rule)


async def _evaluate(session: AsyncSession, exp: Any) -> Any:
    counts = await repo.copy_counts(
        session, exp.tenant_id, exp.store_id, exp.copy_ids, exp.start, exp.end
    )
    variants = [
        Variant(
            copy_id=c,
            impressions=int(counts[c].get("impressions", 0)),
            clicks=int(counts[c].get("clicks", 0)),
            orders=int(counts[c].get("orders", 0)),
            weight=w,
        )
        for c, w in zip(exp.copy_ids, exp.weights, strict=True)
    ]
    return evaluate(variants, _rule(exp))


async def _decide(session: AsyncSession, exp: Any, evaluation: Any, decision: str) -> None:
    winner = evaluation.winner if decision == "winner" else None
    now = _now()
    await repo.update_experiment(
        session,
        exp.id,
        {
            "status": "decided" if decision != "stopped" else "stopped",
            "decision": decision,
            "winner_copy_id": winner,
            "result": evaluation.as_dict(),
            "decided_at": now,
        },
    )
    await stage(
        session,
        ExperimentDecidedV1(
            tenant_id=exp.tenant_id,
            store_id=exp.store_id,
            experiment_id=uuid.UUID(exp.id),
            campaign_id=uuid.UUID(exp.campaign_id) if exp.campaign_id else None,
            metric="ctr",
            winner_copy_id=uuid.UUID(winner) if winner else None,
            decision=decision,
            variants=[
                VariantV1(
                    copy_id=uuid.UUID(v["copy_id"]),
                    impressions=v["impressions"],
                    clicks=v["clicks"],
                    ctr=v["ctr"],
                    probability_best=min(1.0, max(0.0, v["probability_best"])),
                )
                for v in evaluation.variants
            ],
            p_value=evaluation.p_value,
        ),
    )


def _experiment_out(exp: Any, evaluation: dict[str, Any]) -> ExperimentOut:
    if evaluation:
        evaluation = {**evaluation, "summary": sentences(evaluation)}
    return ExperimentOut(
        id=exp.id,
        store_id=exp.store_id,
        campaign_id=exp.campaign_id,
        name=exp.name,
        copy_ids=exp.copy_ids,
        weights=exp.weights,
        start=exp.start,
        end=exp.end,
        rule=exp.rule,
        status=exp.status,
        decision=exp.decision,
        winner_copy_id=exp.winner_copy_id,
        decided_at=exp.decided_at,
        evaluation=evaluation,
    )


async def create_experiment(
    session: AsyncSession, principal: Principal, body: ExperimentCreate
) -> ExperimentOut:
    await _store(session, principal, body.store_id)
    ids = [str(c) for c in body.copy_ids]
    if len(ids) < 2:
        raise _invalid(["body", "copy_ids"], "an experiment needs at least two variants")
    if len(set(ids)) != len(ids):
        raise _invalid(["body", "copy_ids"], "variants must be distinct copies")
    weights = body.weights or [1.0] * len(ids)
    if len(weights) != len(ids) or any(w <= 0 for w in weights):
        raise _invalid(["body", "weights"], "one positive weight per variant")
    copies = {c.id: c for c in await repo.get_copies(session, principal.tenant_id, ids)}
    for i, cid in enumerate(ids):
        if cid not in copies or copies[cid].store_id != body.store_id:
            raise _invalid(["body", "copy_ids", i], "no such copy in this store")
    if body.start and body.end and body.end < body.start:
        raise _invalid(["body", "end"], "the experiment ends before it starts")
    if body.min_sample is not None:
        min_sample = body.min_sample
    elif body.baseline_ctr and body.minimum_detectable_effect:
        min_sample = required_sample(
            body.baseline_ctr,
            body.minimum_detectable_effect,
            alpha=body.alpha,
            comparisons=len(ids) - 1,
        )
    else:
        min_sample = 1000
    rule = DecisionRule(
        alpha=body.alpha,
        min_sample=min_sample,
        looks=body.looks,
        probability_threshold=body.probability_threshold,
        loss_threshold=body.loss_threshold,
    )
    exp_id = str(uuid.uuid4())
    values = {
        "id": exp_id,
        "tenant_id": principal.tenant_id,
        "store_id": body.store_id,
        "campaign_id": str(body.campaign_id) if body.campaign_id else None,
        "name": body.name,
        "copy_ids": ids,
        "weights": weights,
        "start": body.start,
        "end": body.end,
        "rule": rule.__dict__,
        "status": "running",
        "looks_done": 0,
        "decision": None,
        "winner_copy_id": None,
        "result": None,
        "created_by": principal.user_id,
        "created_at": _now(),
        "decided_at": None,
    }
    await repo.insert_experiment(session, values)
    return await get_experiment(session, principal, exp_id)


async def _experiment(session: AsyncSession, principal: Principal, exp_id: str) -> Any:
    exp = await repo.get_experiment(session, principal.tenant_id, exp_id)
    if exp is None or not principal.can_see_store(exp.store_id):
        raise NotFound(f"Experiment {exp_id!r} not found")
    return exp


async def get_experiment(session: AsyncSession, principal: Principal, exp_id: str) -> ExperimentOut:
    exp = await _experiment(session, principal, exp_id)
    if exp.status != "running" and exp.result is not None:
        return _experiment_out(exp, exp.result)
    return _experiment_out(exp, (await _evaluate(session, exp)).as_dict())


async def list_experiments(
    session: AsyncSession,
    principal: Principal,
    *,
    filters: dict[str, Any],
    limit: int,
    cursor: str | None,
) -> Page[ExperimentOut]:
    """Decided experiments show the evaluation they were decided on; running ones are not
    re-evaluated in a list (GET one for its live evaluation)."""
    rows = await repo.list_experiments(
        session,
        principal.tenant_id,
        store_ids=principal.store_ids,
        filters=filters,
        after=cursor,
        limit=limit + 1,
    )
    return Page(
        items=[_experiment_out(e, e.result or {}) for e in rows[:limit]],
        next_cursor=rows[limit - 1].id if len(rows) > limit else None,
    )


async def decide_experiment(
    session: AsyncSession, principal: Principal, exp_id: str, body: DecideIn
) -> ExperimentOut:
    exp = await _experiment(session, principal, exp_id)
    if exp.status != "running":
        raise Conflict(f"The experiment is already {exp.status}")
    evaluation = await _evaluate(session, exp)
    rule = _rule(exp)
    if body.stop:
        decision = "stopped"
    elif evaluation.look <= exp.looks_done:
        # Deciding between planned looks would be peeking: the error rate holds only at looks.
        next_at = (exp.looks_done + 1) * rule.min_sample
        raise Conflict(
            f"No new look yet: the next analysis is at {next_at} impressions per variant",
            reasons=evaluation.reasons,
            next_look_at=next_at,
        )
    elif evaluation.decision is None:
        raise Conflict(
            "No decision yet: " + "; ".join(evaluation.reasons), reasons=evaluation.reasons
        )
    else:
        decision = evaluation.decision
    await _decide(session, exp, evaluation, decision)
    return await get_experiment(session, principal, exp_id)
