"""marshmallow schemas: the wire format of every request and response (and of the OpenAPI spec)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from engine.batch_start import MAX_BATCH

from .fields import UtcTime

IDENT = validate.Regexp(r"^[A-Za-z][A-Za-z0-9_.:-]{0,199}\Z", error="letters, digits, _ . : - (max 200)")


class Strict(Schema):
    class Meta:
        unknown = RAISE


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    field_errors = fields.Dict(data_key="fields")  # {name: [messages]}
    details = fields.Dict()  # e.g. a refused model's or import's {"problems": [...]}


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class PageArgs(Strict):
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000_000))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


def page_of(item_schema: type[Schema], name: str, *, capped: bool = False) -> type[Schema]:
    """A page of items; `capped`: `total` stops counting at a cap, and `totalCapped` says so."""
    extra = {"totalCapped": fields.Boolean()} if capped else {}
    return Schema.from_dict({"items": fields.List(fields.Nested(item_schema)), "total": fields.Integer(),
                             "offset": fields.Integer(), "limit": fields.Integer(), **extra}, name=name)


# -- auth ----------------------------------------------------------------------------------------

class LoginSchema(Strict):
    username = fields.String(required=True, validate=validate.Length(min=1, max=100))
    password = fields.String(required=True, validate=validate.Length(min=1, max=200), load_only=True)


class TokenSchema(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    refresh_token = fields.String()
    refresh_expires_in = fields.Integer()
    roles = fields.List(fields.String())


class RefreshSchema(Strict):
    refresh_token = fields.String(required=True, validate=validate.Length(min=10, max=2000))


class LogoutSchema(Strict):
    all_sessions = fields.Boolean(data_key="allSessions", load_default=False)


class LoggedOutSchema(Schema):
    sessions_ended = fields.Integer(data_key="sessionsEnded")


# -- definitions ---------------------------------------------------------------------------------

class DefinitionSchema(Schema):
    id = fields.Integer()
    key = fields.String()
    version = fields.Integer()
    name = fields.String(allow_none=True)
    sha256 = fields.String()
    deployed_by = fields.String()
    deployed_at = fields.AwareDateTime()
    is_latest = fields.Boolean(data_key="latest")  # the version new cases of the key start on
    suspended = fields.Boolean()  # takes no new cases; running ones go on
    process_errors = fields.Integer(data_key="processErrors")  # changes that failed in this version's model
    last_process_error_at = fields.AwareDateTime(data_key="lastProcessErrorAt", allow_none=True)


class DeployedSchema(DefinitionSchema):
    created = fields.Boolean()
    notice = fields.String()  # e.g. these bytes are an older version, not the latest
    warnings = fields.List(fields.Dict())  # [{element, problem}]: deployed, but worth a look (a laneless task)


class DeployedProcessSchema(Schema):
    key = fields.String()
    definition_id = fields.Integer(data_key="definitionId")
    version = fields.Integer()
    created = fields.Boolean()  # false: the same bytes were deployed before; that version stands


class DeployedDecisionRefSchema(Schema):
    key = fields.String()
    decision_id = fields.Integer(data_key="decisionId")
    version = fields.Integer()
    created = fields.Boolean()


class DeploymentFileSchema(Schema):
    name = fields.String()
    sha256 = fields.String()
    processes = fields.List(fields.Nested(DeployedProcessSchema))
    decisions = fields.List(fields.Nested(DeployedDecisionRefSchema))  # a DMN file's (decision-definition)


class DeploymentSchema(Schema):
    id = fields.Integer()
    name = fields.String(allow_none=True)
    deployed_by = fields.String(data_key="deployedBy")
    deployed_at = fields.AwareDateTime(data_key="deployedAt")
    files = fields.List(fields.Nested(DeploymentFileSchema))


class DeployedBundleSchema(DeploymentSchema):
    warnings = fields.List(fields.Dict())  # [{file, element, problem}]: deployed, but worth a look


class DeploymentArgs(Strict):
    name = fields.String(validate=validate.Length(min=1, max=200))


class DefinitionActionSchema(Strict):
    """Make latest, suspend, activate: who is taken from the login; why is required for the audit."""

    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class DefinitionListArgs(Strict):
    key = fields.String(validate=IDENT)
    latest = fields.Boolean(load_default=False)


class DecisionDefinitionSchema(Schema):
    id = fields.Integer()
    key = fields.String()  # the decision's id in the DMN file
    version = fields.Integer()
    name = fields.String(allow_none=True)
    hit_policy = fields.String(data_key="hitPolicy")
    sha256 = fields.String()  # of the file it came in
    deployed_by = fields.String(data_key="deployedBy")
    deployed_at = fields.AwareDateTime(data_key="deployedAt")
    deployment_id = fields.Integer(data_key="deploymentId", allow_none=True)


class DecisionDefinitionXmlSchema(DecisionDefinitionSchema):
    dmn_xml = fields.String(data_key="dmnXml")  # the whole file (it may define other decisions too)


class DeployedDecisionSchema(DecisionDefinitionSchema):
    created = fields.Boolean()  # false: the same bytes were deployed before, as this version


class DecisionsDeployedSchema(Schema):
    decisions = fields.List(fields.Nested(DeployedDecisionSchema))


class DecisionListArgs(Strict):
    key = fields.String(validate=IDENT)
    latest = fields.Boolean(load_default=False)


# -- instances -----------------------------------------------------------------------------------

class StartSchema(Strict):
    business_key = fields.String(data_key="businessKey", validate=validate.Length(min=1, max=200))
    scope = fields.String(validate=validate.Length(min=1, max=200))
    variables = fields.Dict(keys=fields.String(), load_default=dict)


class StartItemSchema(Strict):
    business_key = fields.String(data_key="businessKey", validate=validate.Length(min=1, max=200))
    variables = fields.Dict(keys=fields.String(), load_default=dict)


class StartBatchSchema(Strict):
    scope = fields.String(validate=validate.Length(min=1, max=200))
    instances = fields.List(fields.Nested(StartItemSchema), required=True,
                            validate=validate.Length(min=1, max=MAX_BATCH))


class InstanceSchema(Schema):
    id = fields.String()
    definition_id = fields.Integer(data_key="definitionId")
    process_key = fields.String(data_key="processKey")
    business_key = fields.String(data_key="businessKey", allow_none=True)
    status = fields.String()
    scope = fields.String(allow_none=True)
    next_wakeup_at = fields.AwareDateTime(data_key="nextWakeupAt", allow_none=True)
    suspended = fields.Boolean()  # completes no task, fires no timer until activated
    started_by = fields.String(data_key="startedBy")
    started_at = fields.AwareDateTime(data_key="startedAt")
    ended_at = fields.AwareDateTime(data_key="endedAt", allow_none=True)
    parent_instance_id = fields.String(data_key="parentInstanceId", allow_none=True)  # called by a call activity
    parent_element_id = fields.String(data_key="parentElementId", allow_none=True)


class ChildIncidentSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    element_id = fields.String(data_key="elementId", allow_none=True)
    message = fields.String()
    created_at = fields.AwareDateTime(data_key="createdAt")


class ChildInstanceSchema(InstanceSchema):
    parent_task_id = fields.String(data_key="parentTaskId", allow_none=True)
    incidents = fields.List(fields.Nested(ChildIncidentSchema))  # open ones


class InstanceDetailSchema(InstanceSchema):
    children = fields.List(fields.Nested(ChildInstanceSchema))  # the instances its call activities called


class StartedSchema(InstanceSchema):
    created = fields.Boolean()


class StartedBatchSchema(Schema):
    instances = fields.List(fields.Nested(InstanceSchema))  # in the order of the request's items


class InstanceListArgs(PageArgs):
    key = fields.String(validate=IDENT)
    status = fields.String(validate=validate.OneOf(["running", "completed", "cancelled"]))
    business_key = fields.String(data_key="businessKey")
    started_after = UtcTime(data_key="startedAfter")
    started_before = UtcTime(data_key="startedBefore")
    definition_id = fields.Integer(data_key="definitionId", validate=validate.Range(min=1, max=2**63 - 1))
    version = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))  # of `key`
    suspended = fields.Boolean()

    @validates_schema
    def _version_needs_key(self, data, **_kwargs) -> None:
        if "version" in data and "key" not in data:
            raise ValidationError("a version is one of a key: give key too", field_name="version")


class CancelSchema(Strict):
    reason = fields.String(validate=validate.Length(max=1000))


class InstanceActionSchema(Strict):
    """Suspend, activate: why is required for the audit."""

    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


# -- migration -----------------------------------------------------------------------------------

ROW_ID = validate.Range(min=1, max=2**63 - 1)


class MigrationSchema(Strict):
    """Two versions of one key, overrides of the by-id mapping, and which running instances of the
    source version (all, these business keys, or these ids; at most `limit`, oldest first)."""

    source_definition_id = fields.Integer(required=True, data_key="sourceDefinitionId", validate=ROW_ID)
    target_definition_id = fields.Integer(required=True, data_key="targetDefinitionId", validate=ROW_ID)
    mapping = fields.Dict(keys=fields.String(validate=IDENT), values=fields.String(validate=IDENT),
                          load_default=dict, validate=validate.Length(max=500))
    instance_ids = fields.List(fields.String(validate=validate.Length(equal=36)), data_key="processInstanceIds",
                               validate=validate.Length(min=1, max=1000))
    business_keys = fields.List(fields.String(validate=validate.Length(min=1, max=200)), data_key="businessKeys",
                                validate=validate.Length(min=1, max=1000))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=1000))


class MigrationPlanArgs(Strict):
    source_definition_id = fields.Integer(required=True, data_key="sourceDefinitionId", validate=ROW_ID)
    target_definition_id = fields.Integer(required=True, data_key="targetDefinitionId", validate=ROW_ID)


class MigrationElementSchema(Schema):
    source = fields.String(data_key="sourceElementId")
    target = fields.String(data_key="targetElementId", allow_none=True)
    kind = fields.String(data_key="type")
    target_kind = fields.String(data_key="targetType", allow_none=True)
    waiting = fields.Integer()  # instances of the selection waiting here
    problems = fields.List(fields.String())  # unsafe: refuses the plan when an instance waits here
    notes = fields.List(fields.String())


class MigrationPlanSchema(Schema):
    source_definition_id = fields.Integer(data_key="sourceDefinitionId")
    target_definition_id = fields.Integer(data_key="targetDefinitionId")
    key = fields.String()
    source_version = fields.Integer(data_key="sourceVersion")
    target_version = fields.Integer(data_key="targetVersion")
    valid = fields.Boolean()
    instances = fields.Integer()  # of the selection, looked at
    mapping = fields.Dict(keys=fields.String(), values=fields.String())
    elements = fields.List(fields.Nested(MigrationElementSchema))
    problems = fields.Dict()  # {element or field: [reasons]}: why the plan is refused


class MigrationFailureSchema(Schema):
    instance_id = fields.String(data_key="instanceId")
    message = fields.String()
    problems = fields.Dict()


class MigrationOutcomeSchema(Schema):
    plan = fields.Nested(MigrationPlanSchema)
    migrated = fields.List(fields.String())
    failed = fields.List(fields.Nested(MigrationFailureSchema))
    remaining = fields.Integer()  # running instances of the selection still on the source version


class AuditEventSchema(Schema):
    id = fields.Integer()
    at = fields.AwareDateTime()
    actor = fields.String()
    action = fields.String()
    instance_id = fields.String(data_key="instanceId", allow_none=True)
    task_id = fields.String(data_key="taskId", allow_none=True)
    element_id = fields.String(data_key="elementId", allow_none=True)
    details = fields.Dict()
    hash = fields.String()


# -- tasks ---------------------------------------------------------------------------------------

class TaskSchema(Schema):
    id = fields.String()
    instance_id = fields.String(data_key="processInstanceId")
    process_key = fields.String(data_key="processKey")
    element_id = fields.String(data_key="taskDefinitionKey")
    name = fields.String(allow_none=True)
    candidate_role = fields.String(data_key="candidateRole", allow_none=True)
    candidate_scope = fields.String(data_key="candidateScope", allow_none=True)
    assignee = fields.String(allow_none=True)
    owner = fields.String(allow_none=True)
    form_key = fields.String(data_key="formKey", allow_none=True)
    priority = fields.Integer()
    due_at = fields.AwareDateTime(data_key="due", allow_none=True)
    follow_up_at = fields.AwareDateTime(data_key="followUp", allow_none=True)
    status = fields.String()
    created_at = fields.AwareDateTime(data_key="created")
    ended_at = fields.AwareDateTime(data_key="ended", allow_none=True)
    completed_by = fields.String(data_key="completedBy", allow_none=True)


class TaskListArgs(PageArgs):
    status = fields.String(load_default="open", validate=validate.OneOf(["open", "completed", "cancelled"]))
    assignee = fields.String()
    unassigned = fields.Boolean(load_default=False)
    candidate_role = fields.String(data_key="candidateRole")
    instance_id = fields.String(data_key="processInstanceId")
    process_key = fields.String(data_key="processKey")
    element_id = fields.String(data_key="taskDefinitionKey")
    due_before = UtcTime(data_key="dueBefore")
    sort = fields.String(load_default="created", validate=validate.OneOf(["created", "due", "priority"]))


class ClaimSchema(Strict):
    user_id = fields.String(data_key="userId", validate=validate.Length(min=1, max=200))


class DelegateSchema(Strict):
    user_id = fields.String(data_key="userId", required=True, validate=validate.Length(min=1, max=200))


class CompleteSchema(Strict):
    variables = fields.Dict(keys=fields.String(), load_default=dict)


# -- messages ------------------------------------------------------------------------------------

class CorrelateSchema(Strict):
    message_name = fields.String(data_key="messageName", required=True, validate=IDENT)
    message_id = fields.String(data_key="messageId", required=True, validate=validate.Length(min=1, max=200))
    correlation_value = fields.String(data_key="correlationValue", validate=validate.Length(min=1, max=400))
    instance_id = fields.String(data_key="processInstanceId", validate=validate.Length(equal=36))
    payload = fields.Dict(keys=fields.String(), load_default=dict)
    ttl_seconds = fields.Integer(data_key="ttlSeconds", validate=validate.Range(min=1, max=30 * 86400))

    @validates_schema
    def _one_target(self, data, **_kw):
        if ("correlation_value" in data) == ("instance_id" in data):
            raise ValidationError("give exactly one of correlationValue or processInstanceId",
                                  field_name="correlationValue")


class CorrelatedSchema(Schema):
    message_id = fields.String(data_key="messageId")
    status = fields.String()
    instance_id = fields.String(data_key="processInstanceId", allow_none=True)
    duplicate = fields.Boolean()


# -- incidents and audit -------------------------------------------------------------------------

class IncidentSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    instance_id = fields.String(data_key="processInstanceId", allow_none=True)
    task_id = fields.String(data_key="taskId", allow_none=True)
    element_id = fields.String(data_key="activityId", allow_none=True)
    operation = fields.String(allow_none=True)
    message = fields.String()
    attempts = fields.Integer()
    status = fields.String()
    created_at = fields.AwareDateTime(data_key="created")
    resolved_at = fields.AwareDateTime(data_key="resolved", allow_none=True)
    resolved_by = fields.String(data_key="resolvedBy", allow_none=True)


class IncidentListArgs(PageArgs):
    status = fields.String(load_default="open", validate=validate.OneOf(["open", "resolved"]))
    instance_id = fields.String(data_key="processInstanceId")

