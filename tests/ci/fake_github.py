"""A small stand-in for the GitHub REST API on loopback, for the CI scripts' tests.

It implements the endpoints the scripts call with GitHub's observable behaviour: bearer-token
authentication, `per_page` pagination with `Link: rel="next"` headers, issue comments (list, create,
edit, delete) with GitHub's 65,536-character body limit answered by a 422, issues (list filtered by
state and creator, create, edit), the pull requests of a commit, workflow runs filtered by head
commit, event and conclusion, and a run's artifacts by name. `fail_next` makes the next requests
answer `fail_status` (502, as GitHub under load, or 429 with `Retry-After`). Every request is recorded.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "test-token"
REPO = "acme/pipelines"
MAX_BODY = 65_536


@dataclass
class State:
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> comment (with "issue")
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)  # number -> issue
    commit_pulls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # sha -> pull requests
    runs: list[dict[str, Any]] = field(default_factory=list)  # workflow runs (with "workflow")
    artifacts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # run id -> artifacts
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    fail_next: int = 0
    fail_status: int = 502
    ids: itertools.count = field(default_factory=lambda: itertools.count(1000))


class FakeGitHub:
    def __init__(self) -> None:
        self.state = State()
        handler = type("Handler", (_Handler,), {"state": self.state, "lock": threading.Lock()})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeGitHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_comment(self, issue: int, body: str, login: str = "someone") -> int:
        comment_id = next(self.state.ids)
        self.state.comments[comment_id] = {"id": comment_id, "issue": issue, "body": body, "user": {"login": login}}
        return comment_id

    def comments(self, issue: int) -> list[dict[str, Any]]:
        return [c for _, c in sorted(self.state.comments.items()) if c["issue"] == issue]

    def add_issue(self, title: str, body: str, login: str = "someone", pull_request: bool = False) -> int:
        number = next(self.state.ids)
        issue = {"number": number, "title": title, "body": body, "state": "open", "user": {"login": login}}
        if pull_request:
            issue["pull_request"] = {"url": f"https://api.github.com/repos/{REPO}/pulls/{number}"}
        self.state.issues[number] = issue
        return number


class _Handler(BaseHTTPRequestHandler):
    state: State
    lock: threading.Lock

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        with self.lock:
            self.state.requests.append((method, self.path))
            if self.state.fail_next > 0:
                self.state.fail_next -= 1
                return self._reply(self.state.fail_status, {"message": "Server Error"}, {"Retry-After": "0"})
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._reply(401, {"message": "Bad credentials"})
            prefix = f"/repos/{REPO}/"
            if not url.path.startswith(prefix):
                return self._reply(404, {"message": "Not Found"})
            self._route(method, url.path[len(prefix) :], query, body)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        state = self.state
        if isinstance(body, dict) and len(str(body.get("body", ""))) > MAX_BODY:
            return self._reply(422, {"message": "Validation Failed", "errors": [{"message": "body is too long"}]})
        if match := re.fullmatch(r"issues/(\d+)/comments", path):
            issue = int(match[1])
            if method == "GET":
                return self._page([c for _, c in sorted(state.comments.items()) if c["issue"] == issue], query)
            comment_id = next(state.ids)
            login = "github-actions[bot]"
            state.comments[comment_id] = {
                "id": comment_id,
                "issue": issue,
                "body": body["body"],
                "user": {"login": login},
            }
            return self._reply(201, state.comments[comment_id])
        if match := re.fullmatch(r"issues/comments/(\d+)", path):
            comment = state.comments.get(int(match[1]))
            if comment is None:
                return self._reply(404, {"message": "Not Found"})
            if comment["user"]["login"] != "github-actions[bot]":
                return self._reply(403, {"message": "Resource not accessible by integration"})
            if method == "DELETE":
                del state.comments[comment["id"]]
                return self._reply(204, None)
            comment["body"] = body["body"]
            return self._reply(200, comment)
        if path == "issues":
            if method == "GET":
                found = [
                    i
                    for _, i in sorted(state.issues.items())
                    if i["state"] == query.get("state", "open")
                    and ("creator" not in query or i["user"]["login"] == query["creator"])
                ]
                return self._page(found, query)
            number = next(state.ids)
            issue = {**body, "number": number, "state": "open", "user": {"login": "github-actions[bot]"}}
            state.issues[number] = issue
            return self._reply(201, issue)
        if match := re.fullmatch(r"issues/(\d+)", path):
            issue = state.issues[int(match[1])]
            issue.update(body)
            return self._reply(200, issue)
        if match := re.fullmatch(r"commits/([0-9a-f]+)/pulls", path):
            return self._reply(200, state.commit_pulls.get(match[1], []))
        if match := re.fullmatch(r"actions/workflows/([\w.-]+)/runs", path):
            runs = [
                r
                for r in state.runs
                if r["workflow"] == match[1]
                and r["head_sha"] == query.get("head_sha", r["head_sha"])
                and r["event"] == query.get("event", r["event"])
                and r["conclusion"] == query.get("status", r["conclusion"])
            ]
            return self._page(runs, query, key="workflow_runs")
        if match := re.fullmatch(r"actions/runs/(\d+)/artifacts", path):
            found = [a for a in state.artifacts.get(int(match[1]), []) if a["name"] == query.get("name", a["name"])]
            return self._reply(200, {"total_count": len(found), "artifacts": found})
        return self._reply(404, {"message": "Not Found"})

    def _page(self, items: list[Any], query: dict[str, str], key: str | None = None) -> None:
        per_page, page = int(query.get("per_page", 30)), int(query.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            next_query = urllib.parse.urlencode({**query, "page": page + 1})
            host = self.headers.get("Host")
            headers["Link"] = f'<http://{host}{urllib.parse.urlsplit(self.path).path}?{next_query}>; rel="next"'
        self._reply(200, {"total_count": len(items), key: chunk} if key else chunk, headers)

    def _reply(self, status: int, answer: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
