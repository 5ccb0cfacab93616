"""bench.loop's client retries as a mobile client does: a GET, or a POST with its Idempotency-Key,
whose connection was reset or refused is sent again (the same key), at most three times, each retry
counted by cause; a call that may not be repeated is not. Against a loopback server that resets the
connections it is told to."""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
from collections import deque

import pytest

from bench._common import free_port
from bench._loop_client import Client, HttpError, LoopFailure, Recorder, failure_cause


class Scripted:
    """Answers each request with the next action: "reset" (RST, no answer) or (status, json body);
    when the script is empty, 200 {"ok": true}. Keeps every request's method, path and headers."""

    def __init__(self, *actions) -> None:
        self.actions = deque(actions)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                lines = head.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = dict(line.split(": ", 1) for line in lines[1:])
                outer.requests.append((method, path, headers))
                action = outer.actions.popleft() if outer.actions else (200, {"ok": True})
                if action == "reset":
                    self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                status, body = action
                data = json.dumps(body).encode()
                self.request.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: "
                                     f"{len(data)}\r\nConnection: close\r\n\r\n".encode() + data)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve():
    servers: list[Scripted] = []

    def start(*actions) -> Scripted:
        servers.append(Scripted(*actions))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def client(base: str, rec: Recorder) -> Client:
    return Client(base, rec, {}, "tester", backoff_s=(0.0,))


def test_a_get_whose_connection_is_reset_is_sent_again(serve):
    server, rec = serve("reset", (200, {"n": 1})), Recorder()
    assert client(server.base, rec).call("GET", "GET /x", "/x") == {"n": 1}
    assert len(server.requests) == 2 and dict(rec.retries) == {"connection_reset": 1}
    assert len(rec.latency["GET /x"]) == 1  # one logical call


def test_a_post_is_retried_with_the_same_idempotency_key(serve):
    server, rec = serve("reset", "reset", (201, {"id": "C-1"})), Recorder()
    assert client(server.base, rec).call("POST", "POST /x", "/x", json={"a": 1}) == {"id": "C-1"}
    keys = [h["Idempotency-Key"] for _m, _p, h in server.requests]
    assert len(keys) == 3 and len(set(keys)) == 1 and rec.retries["connection_reset"] == 2


def test_every_logical_post_gets_a_key_of_its_own(serve):
    server = serve()
    c = client(server.base, Recorder())
    c.call("POST", "POST /x", "/x", json={})
    c.call("POST", "POST /x", "/x", json={})
    assert len({h["Idempotency-Key"] for _m, _p, h in server.requests}) == 2


def test_a_call_that_may_not_be_repeated_is_not(serve):
    server, rec = serve("reset"), Recorder()
    with pytest.raises(LoopFailure) as failed:
        client(server.base, rec).call("POST", "POST /x", "/x", json={}, idempotent=False)
    assert failure_cause(failed.value) == "connection_reset"
    assert len(server.requests) == 1 and not rec.retries


def test_three_tries_then_the_failure_is_counted_by_its_cause(serve):
    server, rec = serve("reset", "reset", "reset", (200, {})), Recorder()
    with pytest.raises(LoopFailure) as failed:
        client(server.base, rec).call("GET", "GET /x", "/x")
    assert failed.value.cause == "connection_reset" and len(server.requests) == 3
    assert dict(rec.retries) == {"connection_reset": 2}


def test_a_refused_connection_is_retried_and_named(serve):
    rec = Recorder()
    with pytest.raises(LoopFailure) as failed:
        client(f"http://127.0.0.1:{free_port()}", rec).call("GET", "GET /x", "/x")
    assert failed.value.cause == "connection_refused" and dict(rec.retries) == {"connection_refused": 2}


def test_a_repeat_still_in_progress_is_asked_again_until_its_answer_is_replayed(serve):
    server, rec = serve("reset", (409, {"error": {"code": "in_progress"}}), (200, {"id": "T"})), Recorder()
    assert client(server.base, rec).call("POST", "POST /x", "/x", json={}) == {"id": "T"}
    assert dict(rec.retries) == {"connection_reset": 1, "http_409_in_progress": 1}


@pytest.mark.parametrize(("status", "cause"), [(409, "http_409"), (422, "http_422"), (503, "http_5xx")])
def test_an_unexpected_answer_is_not_retried_and_counted_by_status(serve, status, cause):
    server, rec = serve((status, {"error": {"code": "conflict"}})), Recorder()
    with pytest.raises(HttpError) as failed:
        client(server.base, rec).call("POST", "POST /x", "/x", json={})
    assert failure_cause(failed.value) == cause and len(server.requests) == 1 and len(rec.errors) == 1
