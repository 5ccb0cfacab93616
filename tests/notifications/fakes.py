"""Fake provider servers on loopback that speak enough of each provider's HTTP API for the real
client code: Twilio Messages, Aliyun SendSms (signature verified), WeChat Work gettoken +
message/send, WeChat Official Account stable_token + template send.

Each fake records what it received and can be scripted to answer a sequence of failures
(`fake.fail_next(...)`) before it goes back to answering normally."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list: sent as JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class FakeServer:
    """A ThreadingHTTPServer on 127.0.0.1 with a random port; subclasses implement `handle`."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: deque[Any] = deque()
        self.lock = threading.Lock()
        self.holding: threading.Event | None = None
        self.hold_after = 0  # POSTs still to answer at once before the held one
        self.held = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Received(
                    self.command, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                    dict(self.headers.items()), self.rfile.read(length),
                )
                with fake.lock:
                    fake.received.append(request)
                    reply = fake.handle(request)
                    hold = None
                    if request.method == "POST" and fake.holding is not None:
                        if fake.hold_after:
                            fake.hold_after -= 1
                        else:
                            hold, fake.holding = fake.holding, None
                if hold is not None:  # the request got here; its answer waits (a client killed meanwhile)
                    fake.held.set()
                    hold.wait(timeout=30)
                data = b"" if reply.body is None else json.dumps(reply.body, ensure_ascii=False).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def handle(self, request: Received) -> Reply:
        raise NotImplementedError

    def fail_next(self, *replies: Any) -> None:
        """Answer the next send requests with these (a Reply, or a provider error code)."""
        self.script.extend(replies)

    def hold_next(self, after: int = 0) -> threading.Event:
        """Handle the next POST (after answering `after` more at once) but keep its answer until the
        returned event is set; `held` is set once that request has arrived."""
        release = threading.Event()
        with self.lock:
            self.holding, self.hold_after = release, after
        return release

    def scripted_reply(self, error: Callable[[Any], Reply]) -> Reply | None:
        """The next scripted answer as a Reply (a bare error code goes through `error`), or None."""
        reply = self.scripted()
        if reply is None or isinstance(reply, Reply):
            return reply
        return error(reply)

    def scripted(self) -> Any | None:
        return self.script.popleft() if self.script else None

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- Twilio --------------------------------------------------------------------------------------


def twilio_error(status: int, code: int, message: str = "scripted") -> Reply:
    return Reply(status, {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                          "status": status})


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature as Twilio computes it: base64 HMAC-SHA1 of the URL followed by every
    POST parameter name and value, sorted by name."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


class FakeTwilio(FakeServer):
    """POST /2010-04-01/Accounts/{sid}/Messages.json with HTTP Basic auth. `fail_next` takes Replies
    (see `twilio_error`)."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[dict[str, str]] = []

    def handle(self, request: Received) -> Reply:
        if request.method != "POST" or request.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return twilio_error(404, 20404, "The requested resource was not found")
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return twilio_error(401, 20003, "Authenticate")
        reply = self.scripted()
        if reply is not None:
            return reply
        form = request.form
        if "To" not in form or "Body" not in form or not ("From" in form or "MessagingServiceSid" in form):
            return twilio_error(400, 21604, "A 'To', 'Body' and 'From' are required")
        self.messages.append(form)
        return Reply(201, {"sid": "SM" + uuid.uuid4().hex, "account_sid": self.account_sid, "status": "queued",
                           "to": form["To"], "from": form.get("From"), "body": form["Body"], "error_code": None})


# --- Aliyun --------------------------------------------------------------------------------------


def aliyun_expected_signature(method: str, params: dict[str, str], secret: str) -> str:
    """Signature v1 computed the way the documentation spells it out, independently of the client."""
    canonical = urlencode(sorted(params.items()), quote_via=quote, safe="~")
    to_sign = "&".join([method, quote("/", safe=""), quote(canonical, safe="~")])
    return base64.b64encode(hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


class FakeAliyunSms(FakeServer):
    """POST / with Action=SendSms, form-encoded, signed; refuses a bad signature or a reused nonce.
    `fail_next` takes Replies or error codes ("isv.BUSINESS_LIMIT_CONTROL")."""

    REQUIRED = ("AccessKeyId", "Action", "Format", "PhoneNumbers", "SignName", "SignatureMethod", "SignatureNonce",
                "SignatureVersion", "TemplateCode", "Timestamp", "Version")

    def __init__(self, access_key_id: str, access_key_secret: str) -> None:
        super().__init__()
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.nonces: set[str] = set()
        self.verified = 0
        self.messages: list[dict[str, str]] = []

    def _error(self, status: int, code: str, message: str) -> Reply:
        return Reply(status, {"Code": code, "Message": message, "RequestId": uuid.uuid4().hex})

    def handle(self, request: Received) -> Reply:
        params = request.form
        missing = [name for name in self.REQUIRED if name not in params]
        if request.method != "POST" or missing:
            return self._error(400, "MissingParameter", f"missing {missing}")
        if params["AccessKeyId"] != self.access_key_id:
            return self._error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        signature = params.pop("Signature", "")
        expected = aliyun_expected_signature("POST", params, self.access_key_secret)
        if not hmac.compare_digest(signature, expected):
            return self._error(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
        if params["SignatureNonce"] in self.nonces:
            return self._error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self.nonces.add(params["SignatureNonce"])
        self.verified += 1
        reply = self.scripted_reply(lambda code: Reply(200, {"Code": code, "Message": "scripted",
                                                             "RequestId": uuid.uuid4().hex}))
        if reply is not None:
            return reply
        self.messages.append(params)
        return Reply(200, {"Code": "OK", "Message": "OK", "BizId": f"{len(self.messages)}^0",
                           "RequestId": uuid.uuid4().hex})


# --- WeChat Work ---------------------------------------------------------------------------------


def wechat_error(errcode: int, errmsg: str = "scripted") -> Reply:
    return Reply(200, {"errcode": errcode, "errmsg": errmsg})


class _Tokens:
    """Access tokens issued by a fake WeChat server; expired ones answer 42001."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.valid: list[str] = []
        self.expired: set[str] = set()
        self.issued = 0

    def issue(self) -> str:
        self.issued += 1
        token = f"{self.prefix}-{self.issued}"
        self.valid.append(token)
        return token

    def expire_all(self) -> None:
        self.expired.update(self.valid)
        self.valid.clear()

    def check(self, token: str | None) -> Reply | None:
        if token in self.valid:
            return None
        if token in self.expired:
            return wechat_error(42001, "access_token expired")
        return wechat_error(40014, "invalid access_token")


class FakeWeChatWork(FakeServer):
    """GET /cgi-bin/gettoken and POST /cgi-bin/message/send. Members not in `users` are invalid
    (81013). `fail_next` takes Replies or errcodes."""

    def __init__(self, corp_id: str, secret: str, users: set[str]) -> None:
        super().__init__()
        self.corp_id = corp_id
        self.secret = secret
        self.users = users
        self.tokens = _Tokens("wwtoken")
        self.messages: list[dict[str, Any]] = []

    @property
    def token_requests(self) -> int:
        return sum(1 for r in self.received if r.path == "/cgi-bin/gettoken")

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.expire_all()

    def handle(self, request: Received) -> Reply:
        if request.path == "/cgi-bin/gettoken" and request.method == "GET":
            if request.query.get("corpid") != self.corp_id or request.query.get("corpsecret") != self.secret:
                return wechat_error(40001, "invalid credential")
            return Reply(200, {"errcode": 0, "errmsg": "ok", "access_token": self.tokens.issue(), "expires_in": 7200})
        if request.path != "/cgi-bin/message/send" or request.method != "POST":
            return Reply(404, {"errcode": 404, "errmsg": "not found"})
        rejected = self.tokens.check(request.query.get("access_token"))
        if rejected:
            return rejected
        reply = self.scripted_reply(lambda code: wechat_error(int(code)))
        if reply is not None:
            return reply
        payload = _json(request.body)
        recipients = str(payload.get("touser", "")).split("|")
        valid = [u for u in recipients if u in self.users]
        if not valid:
            return wechat_error(81013, "user & party & tag all invalid")
        if self._duplicate(payload):  # WeChat Work's duplicate check: accepted, not shown again
            return Reply(200, {"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": "duplicate"})
        self.messages.append(payload)
        invalid = "|".join(u for u in recipients if u not in self.users)
        return Reply(200, {"errcode": 0, "errmsg": "ok", "invaliduser": invalid, "msgid": f"msg{len(self.messages)}"})

    def _duplicate(self, payload: dict[str, Any]) -> bool:
        """The same content to the same members, with `enable_duplicate_check` (interval not modelled:
        the fake lives shorter than any interval)."""
        if not payload.get("enable_duplicate_check"):
            return False
        body = {k: v for k, v in payload.items() if k not in ("enable_duplicate_check", "duplicate_check_interval")}
        return any({k: v for k, v in m.items() if k not in ("enable_duplicate_check", "duplicate_check_interval")}
                   == body for m in self.messages)

    def delivered_to(self, user: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if user in str(m.get("touser", "")).split("|")]


# --- WeChat Official Account ---------------------------------------------------------------------


class FakeWeChatOA(FakeServer):
    """POST /cgi-bin/stable_token and POST /cgi-bin/message/template/send. Openids not in
    `followers` answer 43004. `fail_next` takes Replies or errcodes."""

    def __init__(self, app_id: str, secret: str, followers: set[str]) -> None:
        super().__init__()
        self.app_id = app_id
        self.secret = secret
        self.followers = followers
        self.tokens = _Tokens("oatoken")
        self.messages: list[dict[str, Any]] = []
        self.forced_refreshes = 0
        self.revoked: set[str] = set()

    def revoke_current_token(self) -> None:
        """The token stops working for business calls, yet stable_token without force_refresh
        keeps handing it out (as after a secret reset elsewhere)."""
        with self.lock:
            self.revoked = set(self.tokens.valid)

    def handle(self, request: Received) -> Reply:
        if request.path == "/cgi-bin/stable_token" and request.method == "POST":
            body = _json(request.body)
            if body.get("appid") != self.app_id or body.get("secret") != self.secret:
                return wechat_error(40125, "invalid appsecret")
            if body.get("force_refresh"):
                self.forced_refreshes += 1
                self.tokens.expire_all()
            token = self.tokens.valid[-1] if self.tokens.valid else self.tokens.issue()
            return Reply(200, {"access_token": token, "expires_in": 7200})
        if request.path != "/cgi-bin/message/template/send" or request.method != "POST":
            return Reply(404, {"errcode": 404, "errmsg": "not found"})
        token = request.query.get("access_token")
        if token in self.revoked:
            return wechat_error(40001, "invalid credential, access_token is invalid or not latest")
        rejected = self.tokens.check(token)
        if rejected:
            return rejected
        reply = self.scripted_reply(lambda code: wechat_error(int(code)))
        if reply is not None:
            return reply
        payload = _json(request.body)
        if payload.get("touser") not in self.followers:
            return wechat_error(43004, "require subscribe")
        self.messages.append(payload)
        return Reply(200, {"errcode": 0, "errmsg": "ok", "msgid": 200000 + len(self.messages)})
