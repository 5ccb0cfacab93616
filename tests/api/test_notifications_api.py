"""The notifications API over the real pipeline: notices queued with `queue_notices`, delivered by
the `notify.deliver` job through the Twilio SDK (or Aliyun SendSms) against the fake provider
servers, then read back per role, previewed, and moved on by signed Twilio status callbacks and
token-guarded Aliyun SmsReport pushes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from api import accounts, create_app
from api.settings import Settings
from engine import outbox
from engine.models import Incident
from engine.queues import ManualJobQueue
from notifications.config import NotifySettings
from notifications.delivery import DeliveryPolicy
from notifications.install import install
from notifications.models import Notification, NotificationEvent
from notifications.providers.aliyun_sms import REPORT_ACK, AliyunSms, AliyunTemplate
from notifications.providers.twilio_sms import TwilioSms
from notifications.queueing import DELIVER, NoticeRequest, queue_notices
from notifications.quiet_hours import QuietHours
from tests.api.conftest import PASSWORD, Caller
from tests.notifications.fakes import FakeAliyunSms, FakeTwilio
from workflows.cases import Case

SID, TOKEN = "AC" + "7" * 32, "twilio-auth-token"
ALIYUN_ID, ALIYUN_SECRET, ALIYUN_TOKEN = "LTAI-api-test", "aliyun-secret", "receipt-token-123"
PUBLIC_URL = "https://gridloop.example"  # what Twilio calls; the test client talks to http://localhost
NOTIFY = NotifySettings(twilio_account_sid=SID, twilio_auth_token=TOKEN, twilio_from="+15005550006",
                        public_url=PUBLIC_URL, aliyun_receipt_token=ALIYUN_TOKEN, quiet_hours="off")
QUIET_OFF = QuietHours(start=None)
IN_GRID, OTHER_GRID = "320706001", "310101001"  # sup's scope is 3207; insp_other's grid is 320703002
TWILIO_RECEIPTS = "/api/v1/notifications/receipts/twilio"
ALIYUN_RECEIPTS = "/api/v1/notifications/receipts/aliyun"


@pytest.fixture
def app(rt):
    settings = Settings(database_url=rt.db.url, secret_key="test-secret", deploy_bundled=False, notify=NOTIFY)
    application = create_app(settings, runtime=rt)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(SID, TOKEN) as server:
        yield server


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    with FakeAliyunSms(ALIYUN_ID, ALIYUN_SECRET) as server:
        yield server


def twilio_provider(fake: FakeTwilio) -> TwilioSms:
    return TwilioSms(SID, TOKEN, from_number="+15005550006", status_callback_url=NOTIFY.twilio_callback_url(),
                     base_url=fake.url, timeout=5)


def aliyun_provider(fake: FakeAliyunSms) -> AliyunSms:
    return AliyunSms(ALIYUN_ID, ALIYUN_SECRET, sign_name="连云港生态环境", endpoint=fake.url + "/", timeout=5,
                     templates={kind: AliyunTemplate("SMS_100001") for kind in ("dispatch", "case_closed")})


def deliver(rt, providers) -> int:
    """Relay the due outbox rows and run the delivery jobs until none are left."""
    install(rt, providers, DeliveryPolicy(quiet=QUIET_OFF))
    queue, ran = ManualJobQueue(rt), 0
    while outbox.relay(rt, queue):
        ran += queue.run_all()
    return ran


def make_case(rt, case_id: str, grid: str) -> None:
    now = rt.clock.now()
    with rt.db.transaction() as s:
        s.add(Case(id=case_id, tenant="320700", source="monitoring", external_id=f"ext-{case_id}", category="air",
                   grid_code=grid, route_reason="test", status="open", first_seen=now, last_seen=now, details={},
                   created_at=now))


def notice(key: str, recipient: str, channels, *, kind: str = "dispatch", case_id: str | None = None,
           **data) -> NoticeRequest:
    values = {"case_no": case_id or "—", "category": "大气", "address": "海州区朝阳路12号", "due": "2026-03-02 18:00",
              **data}
    return NoticeRequest(key=key, kind=kind, recipient=recipient, channels=channels, data=values, case_id=case_id,
                         urgent=True)


def queue(rt, *requests: NoticeRequest) -> list[str]:
    with rt.db.transaction() as s:
        return queue_notices(s, rt.clock.now(), list(requests), QUIET_OFF)


def by_id(rt, notification_id: str) -> Notification:
    with rt.db.session() as s:
        return s.get(Notification, notification_id)


def statuses(rt, notification_id: str) -> list[str]:
    with rt.db.session() as s:
        return list(s.scalars(select(NotificationEvent.status).where(
            NotificationEvent.notification_id == notification_id).order_by(NotificationEvent.id)))


def login(rt, client, username: str, roles: list[str], scope: str | None) -> Caller:
    accounts.create_user(rt.db, rt.clock.now(), username=username, password=PASSWORD, roles=roles, scope=scope,
                         hash_method="pbkdf2:sha256:1000")
    token = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD}).get_json()
    return Caller(client, {"Authorization": f"Bearer {token['access_token']}"}, username)


@pytest.fixture
def sent(rt, clock, twilio) -> dict[str, str]:
    """Four notices delivered by Twilio SMS, a minute apart: to insp on a case in sup's grid, to
    insp_other on a case in another city, to the citizen who reported the first case, and a warning
    (no case) to sup."""
    make_case(rt, "C-IN", IN_GRID)
    make_case(rt, "C-OUT", OTHER_GRID)
    ids = {}
    for name, request in [
        ("insp", notice("i1:dispatch:insp", "insp", [("sms", "+8613800000001"), ("wechat_work", "insp")],
                        case_id="C-IN")),
        ("insp_other", notice("i2:dispatch:insp_other", "insp_other", [("sms", "+8613800000002")], case_id="C-OUT")),
        ("citizen", notice("i1:closed:citizen", "citizen:C-IN", [("sms", "+8613912345678")], kind="case_closed",
                           case_id="C-IN", result="已整改")),
        ("sup", notice("w1:warning:sup", "sup", [("sms", "+8613800000009")], kind="warning", level="II",
                       station="新浦站", pollutant="PM2.5", value=180, unit="μg/m³", limit=75,
                       observed_at="2026-03-02 08:00")),
    ]:
        (ids[name],) = queue(rt, request)
        clock.advance(timedelta(minutes=1))
    assert deliver(rt, {"sms": twilio_provider(twilio)}) == 4
    assert len(twilio.messages) == 4
    return ids


def ids_of(response) -> set[str]:
    assert response.status_code == 200, response.get_json()
    return {item["id"] for item in response.get_json()["items"]}


# -- reading, per role ---------------------------------------------------------------------------

def test_each_role_sees_what_it_may(rt, client, users, sent):
    everything = set(sent.values())
    assert ids_of(users["admin"].get("/api/v1/notifications")) == everything
    assert ids_of(users["leader"].get("/api/v1/notifications")) == everything
    # the supervisor of 3207: the notices of cases in the grid (inspector's and citizen's) and their own
    assert ids_of(users["sup"].get("/api/v1/notifications")) == {sent["insp"], sent["citizen"], sent["sup"]}
    assert ids_of(users["insp"].get("/api/v1/notifications")) == {sent["insp"]}
    assert ids_of(users["insp_other"].get("/api/v1/notifications")) == {sent["insp_other"]}

    shanghai = login(rt, client, "sup_sh", ["supervisor"], "3101")
    assert ids_of(shanghai.get("/api/v1/notifications")) == {sent["insp_other"]}
    nogrid = login(rt, client, "sup_nogrid", ["supervisor"], None)  # fails closed: only their own (none)
    assert ids_of(nogrid.get("/api/v1/notifications")) == set()
    assert nogrid.get(f"/api/v1/notifications/{sent['insp']}").status_code == 404


def test_one_notification_with_its_history_and_the_same_visibility(users, sent):
    r = users["insp"].get(f"/api/v1/notifications/{sent['insp']}")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "sent" and body["provider"] == "twilio" and body["providerMessageId"].startswith("SM")
    assert body["caseId"] == "C-IN" and body["channel"] == "sms" and body["fallbackChannels"] == ["wechat_work"]
    assert [e["status"] for e in body["events"]] == ["queued", "sending", "sent"]
    assert body["events"][2]["detail"]["provider"] == "twilio"
    assert body["data"]["case_no"] == "C-IN" and body["fallbackIds"] == []

    assert users["sup"].get(f"/api/v1/notifications/{sent['insp_other']}").status_code == 404  # another city
    assert users["insp"].get(f"/api/v1/notifications/{sent['citizen']}").status_code == 404  # not theirs
    assert users["insp_other"].get(f"/api/v1/notifications/{sent['insp']}").status_code == 404
    assert users["admin"].get("/api/v1/notifications/no-such-id").status_code == 404


def test_a_citizens_number_is_shown_to_admins_only(users, sent):
    assert users["admin"].get(f"/api/v1/notifications/{sent['citizen']}").get_json()["address"] == "+8613912345678"
    masked = users["sup"].get(f"/api/v1/notifications/{sent['citizen']}").get_json()["address"]
    assert masked.endswith("5678") and "13912" not in masked
    assert users["sup"].get(f"/api/v1/notifications/{sent['sup']}").get_json()["address"] == "+8613800000009"


def test_filters_and_pages_newest_first(rt, users, sent):
    admin = users["admin"]
    newest_first = [sent["sup"], sent["citizen"], sent["insp_other"], sent["insp"]]
    assert [i["id"] for i in admin.get("/api/v1/notifications").get_json()["items"]] == newest_first
    page = admin.get("/api/v1/notifications?limit=2&offset=1").get_json()
    assert page["total"] == 4 and [i["id"] for i in page["items"]] == newest_first[1:3]

    assert ids_of(admin.get("/api/v1/notifications?caseId=C-IN")) == {sent["insp"], sent["citizen"]}
    assert ids_of(admin.get("/api/v1/notifications?recipient=insp_other")) == {sent["insp_other"]}
    assert ids_of(admin.get("/api/v1/notifications?kind=warning")) == {sent["sup"]}
    assert ids_of(admin.get("/api/v1/notifications?status=sent&channel=sms")) == set(sent.values())
    assert ids_of(admin.get("/api/v1/notifications?status=delivered")) == set()
    assert ids_of(admin.get("/api/v1/notifications?channel=wechat_work")) == set()
    # filters narrow what the caller may see, never widen it
    assert ids_of(users["insp"].get("/api/v1/notifications?recipient=insp_other")) == set()
    assert ids_of(users["sup"].get("/api/v1/notifications?caseId=C-OUT")) == set()


@pytest.mark.parametrize("query, field", [("status=lost", "status"), ("kind=spam", "kind"), ("channel=fax", "channel"),
                                          ("limit=0", "limit"), ("bogus=1", "bogus")])
def test_bad_filters_are_422_with_the_field(users, query, field):
    r = users["admin"].get(f"/api/v1/notifications?{query}")
    assert r.status_code == 422
    assert field in r.get_json()["error"]["fields"]


# -- preview -------------------------------------------------------------------------------------

def test_preview_of_an_sms_counts_its_segments_and_shows_gaps(users):
    r = users["sup"].post("/api/v1/notifications/preview", json={
        "kind": "dispatch", "channel": "sms", "data": {"case_no": "GL-7", "address": "海州区", "due": 18}})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["title"] == "【案件派遣】GL-7"
    assert body["text"] == "您有新的案件待处置：GL-7，—，地点：海州区。请于18前签收并处置。"  # no category: "—"
    assert body["segments"] == 1 and body["encoding"] == "UCS-2" and body["truncated"] is False
    assert body["url"] is None


def test_preview_cuts_a_long_sms_to_three_segments_and_keeps_the_link(users):
    url = "https://gridloop.example/c/GL-7"
    r = users["admin"].post("/api/v1/notifications/preview", json={
        "kind": "urge", "channel": "sms", "data": {"case_no": "GL-7", "comment": "请尽快处理" * 60, "url": url}})
    body = r.get_json()
    assert body["segments"] == 3 and body["truncated"] is True
    assert body["text"].endswith(f"… {url}") and body["url"] == url


def test_preview_on_wechat_in_english_has_no_segments(users):
    body = users["admin"].post("/api/v1/notifications/preview", json={
        "kind": "warning", "channel": "wechat_work", "locale": "en",
        "data": {"level": "III", "station": "Xinpu", "pollutant": "O3", "value": 210.5, "unit": "μg/m³"}}).get_json()
    assert body["title"] == "Level III (yellow) warning: Xinpu"
    assert "exceeds the limit of —μg/m³" in body["text"]
    assert body["segments"] is None and body["encoding"] is None


@pytest.mark.parametrize("payload, field", [
    ({"kind": "spam", "channel": "sms"}, "kind"),
    ({"channel": "sms"}, "kind"),
    ({"kind": "dispatch", "channel": "fax"}, "channel"),
    ({"kind": "dispatch", "channel": "sms", "data": {"case_no": ["a"]}}, "data"),
    ({"kind": "dispatch", "channel": "sms", "data": {"case_no": True}}, "data"),
    ({"kind": "dispatch", "channel": "sms", "data": {"case_no": "x" * 1001}}, "data"),
    ({"kind": "dispatch", "channel": "sms", "locale": "zh_CN!"}, "locale"),
    ({"kind": "warning", "channel": "sms", "data": {"level": "V"}}, "data"),
    ({"kind": "dispatch", "channel": "sms", "extra": 1}, "extra"),
])
def test_bad_previews_are_422_with_the_field(users, payload, field):
    r = users["admin"].post("/api/v1/notifications/preview", json=payload)
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["error"]["fields"]


# -- Twilio status callbacks ---------------------------------------------------------------------

def twilio_callback(client, fake: FakeTwilio, notification_id: str, status: str, *, token: str = TOKEN,
                    signature: str | None = "compute", url: str | None = None, error_code: str | None = None):
    """POST the status callback Twilio would send for the message of `notification_id`, to the
    StatusCallback URL the delivery gave Twilio (signed over that public URL)."""
    form = next(m for m in fake.messages if f"notification_id={notification_id}" in m["StatusCallback"])
    callback = form["StatusCallback"]
    params = {"MessageSid": f"SM{notification_id[:8]}", "MessageStatus": status, "SmsStatus": status,
              "AccountSid": SID, "To": form["To"], "From": form["From"], "ApiVersion": "2010-04-01"}
    if error_code:
        params["ErrorCode"] = error_code
    headers = {}
    if signature == "compute":
        headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(url or callback, params)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    parts = urlsplit(callback)
    return client.post(f"{parts.path}?{parts.query}", data=params, headers=headers)


def test_twilio_receipts_move_forward_only(rt, client, twilio, sent):
    nid = sent["insp"]
    assert twilio_callback(client, twilio, nid, "delivered").status_code == 204
    assert by_id(rt, nid).status == "delivered"
    assert twilio_callback(client, twilio, nid, "sent").status_code == 204  # late and out of order
    assert by_id(rt, nid).status == "delivered"
    assert statuses(rt, nid) == ["queued", "sending", "sent", "delivered", "receipt"]


def test_twilio_receipt_without_our_id_is_found_by_message_sid(rt, client, twilio, sent):
    n = by_id(rt, sent["insp_other"])
    params = {"MessageSid": n.provider_message_id, "MessageStatus": "delivered"}
    url = NOTIFY.twilio_callback_url()
    r = client.post(TWILIO_RECEIPTS, data=params,
                    headers={"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, params)})
    assert r.status_code == 204
    assert by_id(rt, n.id).status == "delivered"


@pytest.mark.parametrize("how", ["missing", "wrong token", "garbage", "signed for the internal URL"])
def test_unsigned_or_forged_twilio_receipts_are_403_and_change_nothing(rt, client, twilio, sent, how):
    nid = sent["insp"]
    before = statuses(rt, nid)
    kw = {"missing": dict(signature=None), "wrong token": dict(token="not-the-token"),
          "garbage": dict(signature="bm90IGEgc2lnbmF0dXJl"),
          "signed for the internal URL": dict(url=f"http://localhost{TWILIO_RECEIPTS}?notification_id={nid}")}[how]
    r = twilio_callback(client, twilio, nid, "failed", **kw)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "invalid_signature"
    assert by_id(rt, nid).status == "sent" and statuses(rt, nid) == before
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 4  # no fallback either


def test_a_tampered_query_breaks_the_signature(rt, client, twilio, sent):
    params = {"MessageSid": "SMx", "MessageStatus": "failed"}
    signed_for = f"{NOTIFY.twilio_callback_url()}?notification_id={sent['insp']}"
    sig = RequestValidator(TOKEN).compute_signature(signed_for, params)
    r = client.post(f"{TWILIO_RECEIPTS}?notification_id={sent['citizen']}", data=params,
                    headers={"X-Twilio-Signature": sig})
    assert r.status_code == 403
    assert by_id(rt, sent["citizen"]).status == "sent"


def test_twilio_failure_falls_back_to_the_next_channel(rt, client, users, twilio, sent):
    nid = sent["insp"]  # sms first, then WeChat Work
    assert twilio_callback(client, twilio, nid, "undelivered", error_code="30003").status_code == 204
    failed = by_id(rt, nid)
    assert failed.status == "failed" and "30003" in failed.last_error
    with rt.db.session() as s:
        (fallback,) = s.scalars(select(Notification).where(Notification.fallback_of == nid))
    assert (fallback.channel, fallback.address, fallback.status) == ("wechat_work", "insp", "queued")
    body = users["insp"].get(f"/api/v1/notifications/{nid}").get_json()
    assert body["fallbackIds"] == [fallback.id] and body["events"][-1]["status"] == "failed"
    assert ids_of(users["insp"].get("/api/v1/notifications?channel=wechat_work")) == {fallback.id}


def test_twilio_receipts_for_unknown_messages_or_statuses_are_204_and_logged(rt, client, twilio, sent, caplog):
    url = NOTIFY.twilio_callback_url()
    for params in ({"MessageSid": "SMnobody", "MessageStatus": "delivered"},
                   {"MessageSid": "SMnobody", "MessageStatus": "teleported"}):
        sig = RequestValidator(TOKEN).compute_signature(url, params)
        assert client.post(TWILIO_RECEIPTS, data=params, headers={"X-Twilio-Signature": sig}).status_code == 204
    assert "no notification of ours" in caplog.text and "status we do not know" in caplog.text
    assert {by_id(rt, i).status for i in sent.values()} == {"sent"}


def test_a_signed_twilio_receipt_without_its_fields_is_422(client):
    url = NOTIFY.twilio_callback_url()
    params = {"AccountSid": SID}
    sig = RequestValidator(TOKEN).compute_signature(url, params)
    r = client.post(TWILIO_RECEIPTS, data=params, headers={"X-Twilio-Signature": sig})
    assert r.status_code == 422
    assert {"MessageSid", "MessageStatus"} <= set(r.get_json()["error"]["fields"])


def test_twilio_receipts_are_refused_where_twilio_is_not_configured(rt):
    bare = create_app(Settings(database_url=rt.db.url, secret_key="s", deploy_bundled=False), runtime=rt)
    params = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    sig = RequestValidator("").compute_signature(f"{TWILIO_RECEIPTS}", params)
    r = bare.test_client().post(TWILIO_RECEIPTS, data=params, headers={"X-Twilio-Signature": sig})
    assert r.status_code == 403


# -- Aliyun SmsReport pushes ---------------------------------------------------------------------

@pytest.fixture
def by_aliyun(rt, aliyun) -> dict[str, str]:
    """Two dispatch notices sent by Aliyun SMS: one with WeChat Work to fall back to, one without."""
    make_case(rt, "C-AL", IN_GRID)
    (with_fallback,) = queue(rt, notice("a1:dispatch:insp", "insp", [("sms", "13800000001"), ("wechat_work", "insp")],
                                        case_id="C-AL"))
    (alone,) = queue(rt, notice("a1:dispatch:insp_other", "insp_other", [("sms", "13800000002")], case_id="C-AL"))
    assert deliver(rt, {"sms": aliyun_provider(aliyun)}) == 2
    return {"fallback": with_fallback, "alone": alone}


def report(n: Notification, success: bool, *, biz_id: str | None = "same", out_id: str | None = "same") -> dict:
    return {"phone_number": n.address, "success": success, "biz_id": n.provider_message_id if biz_id == "same"
            else biz_id, "out_id": n.id if out_id == "same" else out_id, "err_code": "DELIVERED" if success
            else "MK:0001", "err_msg": "用户接收成功" if success else "空号", "send_time": "2026-03-02 09:00:01",
            "report_time": "2026-03-02 09:00:05", "sms_size": "1"}


def push(client, reports: list[dict], token: str | None = ALIYUN_TOKEN):
    query = f"?token={token}" if token is not None else ""
    return client.post(f"{ALIYUN_RECEIPTS}{query}", data=json.dumps(reports, ensure_ascii=False),
                       content_type="application/json")


def test_aliyun_receipts_deliver_and_fall_back(rt, client, users, by_aliyun):
    ok, bad = by_id(rt, by_aliyun["alone"]), by_id(rt, by_aliyun["fallback"])
    assert ok.provider == "aliyun" and ok.status == "sent" and ok.provider_message_id.endswith("^0")
    r = push(client, [report(ok, True), report(bad, False)])
    assert r.status_code == 200 and r.get_json() == REPORT_ACK
    assert by_id(rt, ok.id).status == "delivered"
    assert by_id(rt, bad.id).status == "failed" and "MK:0001" in by_id(rt, bad.id).last_error
    with rt.db.session() as s:
        (fallback,) = s.scalars(select(Notification).where(Notification.fallback_of == bad.id))
    assert (fallback.channel, fallback.status) == ("wechat_work", "queued")
    # the same push again (Aliyun retries) changes nothing
    assert push(client, [report(ok, True), report(bad, False)]).get_json() == REPORT_ACK
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 3


def test_an_aliyun_failure_with_no_channel_left_is_an_incident_on_the_metrics(rt, client, by_aliyun):
    alone = by_id(rt, by_aliyun["alone"])
    push(client, [report(alone, False)])
    with rt.db.session() as s:
        (incident,) = s.scalars(select(Incident).where(Incident.operation == DELIVER))
    assert incident.status == "open" and incident.payload["payload"] == {"notification_id": alone.id}
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "gridloop_notification_incidents_open 1" in metrics
    assert 'gridloop_notifications{status="failed"} 1' in metrics
    health = client.get("/health").get_json()["notifications"]
    assert health["incidents_open"] == 1 and health["by_status"]["failed"] == 1


def test_an_aliyun_receipt_is_found_by_out_id_when_the_biz_id_is_unknown(rt, client, by_aliyun):
    n = by_id(rt, by_aliyun["alone"])
    assert push(client, [report(n, True, biz_id="999^0")]).status_code == 200
    assert by_id(rt, n.id).status == "delivered"


def test_aliyun_receipts_for_nobody_are_acknowledged(rt, client, by_aliyun):
    n = by_id(rt, by_aliyun["alone"])
    r = push(client, [report(n, False, biz_id="999^0", out_id="not-ours"), report(n, False, biz_id=None, out_id=None)])
    assert r.status_code == 200 and r.get_json() == REPORT_ACK
    assert by_id(rt, n.id).status == "sent"


@pytest.mark.parametrize("token", [None, "", "receipt-token-12", "receipt-token-123x", "令牌"])
def test_aliyun_receipts_without_the_token_are_403_and_change_nothing(rt, client, by_aliyun, token):
    n = by_id(rt, by_aliyun["fallback"])
    r = push(client, [report(n, False)], token=token)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "invalid_token"
    assert by_id(rt, n.id).status == "sent"
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 2


def test_aliyun_receipts_are_refused_where_no_token_is_configured(rt):
    bare = create_app(Settings(database_url=rt.db.url, secret_key="s", deploy_bundled=False), runtime=rt)
    r = bare.test_client().post(f"{ALIYUN_RECEIPTS}?token=", json=[])
    assert r.status_code == 403


@pytest.mark.parametrize("body, status", [("not json", 400), ('{"a": 1}', 400), ('[{"biz_id": "1^0"}]', 422),
                                          ('[{"success": "maybe"}]', 422), ("[1, 2]", 422)])
def test_bad_aliyun_pushes_are_4xx(client, body, status):
    r = client.post(f"{ALIYUN_RECEIPTS}?token={ALIYUN_TOKEN}", data=body, content_type="application/json")
    assert r.status_code == status, r.get_json()


# -- health and metrics --------------------------------------------------------------------------

def test_metrics_and_health_count_notifications_by_status(rt, client, twilio, sent):
    twilio_callback(client, twilio, sent["insp"], "delivered")
    text = client.get("/metrics").get_data(as_text=True)
    assert "# TYPE gridloop_notifications gauge" in text
    for status, n in {"queued": 0, "sending": 0, "sent": 3, "delivered": 1, "failed": 0, "acknowledged": 0}.items():
        assert f'gridloop_notifications{{status="{status}"}} {n}\n' in text
    assert "gridloop_notification_incidents_open 0" in text
    health = client.get("/health").get_json()
    assert health["status"] == "ok"
    assert health["notifications"]["by_status"]["sent"] == 3 and health["notifications"]["incidents_open"] == 0


def test_the_openapi_document_lists_the_notification_endpoints(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert paths["/api/v1/notifications"]["get"]["x-roles"] == ["admin", "leader", "supervisor", "inspector"]
    assert paths["/api/v1/notifications/preview"]["post"]["x-roles"] == ["admin", "supervisor"]
    assert paths["/api/v1/notifications/receipts/twilio"]["post"]["x-roles"] == []
    assert "204" in paths["/api/v1/notifications/receipts/twilio"]["post"]["responses"]
