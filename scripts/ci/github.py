"""The one place the CI scripts talk to GitHub: a thin REST client and the Actions output files.

The client knows the repository it works on (`GITHUB_REPOSITORY`), the API root (`GITHUB_API_URL`,
github.com's by default, so GitHub Enterprise Server works too) and the token (`GITHUB_TOKEN`). It
retries what GitHub asks to be retried (5xx, 429 and rate-limit 403s, honouring `Retry-After`), follows
`Link: rel="next"` pagination, and never sends the token to a host other than the API's.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

API_VERSION = "2022-11-28"
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
_RETRIED = frozenset({429, 500, 502, 503, 504})


class GitHubError(Exception):
    """A request GitHub refused or that never got an answer; the message names the request."""

    def __init__(self, method: str, url: str, status: int | None, message: str) -> None:
        super().__init__(f"GitHub {method} {url} failed" + (f" ({status})" if status else "") + f": {message}")
        self.status = status


@dataclass(frozen=True)
class GitHub:
    repository: str
    token: str
    api_url: str = "https://api.github.com"
    timeout: float = 30.0
    attempts: int = 4
    backoff: float = 2.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> GitHub:
        env = os.environ if environ is None else environ
        missing = [name for name in ("GITHUB_REPOSITORY", "GITHUB_TOKEN") if not env.get(name)]
        if missing:
            raise GitHubError("-", "-", None, f"environment variable(s) {', '.join(missing)} not set")
        return cls(env["GITHUB_REPOSITORY"], env["GITHUB_TOKEN"], env.get("GITHUB_API_URL") or cls.api_url)

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """`path` relative to the repository (`issues/1/comments`) or absolute to the API (`/user`)."""
        root = self.api_url.rstrip("/")
        full = f"{root}{path}" if path.startswith("/") else f"{root}/repos/{self.repository}/{path}"
        return f"{full}?{urllib.parse.urlencode(params)}" if params else full

    def request(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """JSON of the answer (None for an empty one, e.g. a DELETE's 204)."""
        return self._send(method, self.url(path, params), body)[0]

    def paginate(self, path: str, params: Mapping[str, Any] | None = None, key: str | None = None) -> Iterator[Any]:
        """Every item of a listing, page by page (`key` names the list in wrapped answers such as
        `{"total_count": 2, "workflow_runs": [...]}`)."""
        url: str | None = self.url(path, {"per_page": 100, **(params or {})})
        while url:
            page, headers = self._send("GET", url, None)
            yield from (page[key] if key else page)
            match = _NEXT_LINK.search(headers.get("Link", ""))
            url = match.group(1) if match else None

    def _send(self, method: str, url: str, body: Any) -> tuple[Any, Mapping[str, str]]:
        if urllib.parse.urlsplit(url).netloc != urllib.parse.urlsplit(self.api_url).netloc:
            raise GitHubError(method, url, None, "refusing to send the token to a host other than the API's")
        data = None if body is None else json.dumps(body).encode()
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "aws-data-pipelines-ci",
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                    return (json.loads(raw) if raw.strip() else None), response.headers
            except urllib.error.HTTPError as error:
                text = error.read().decode(errors="replace")
                retry = error.code in _RETRIED or (error.code == 403 and "rate limit" in text.lower())
                if not retry or attempt == self.attempts:
                    raise GitHubError(method, url, error.code, _message(text)) from None
                delay = _retry_after(error.headers.get("Retry-After"), self.backoff * attempt)
            except (urllib.error.URLError, TimeoutError) as error:
                if attempt == self.attempts:
                    raise GitHubError(method, url, None, str(getattr(error, "reason", error))) from None
                delay = self.backoff * attempt
            time.sleep(min(delay, 60.0))
        raise AssertionError("unreachable")


def _retry_after(header: str | None, default: float) -> float:
    """Seconds GitHub asks to wait (Retry-After is in seconds on the REST API), else `default`."""
    try:
        return float(header) if header else default
    except ValueError:
        return default


def _message(text: str) -> str:
    try:
        answer = json.loads(text)
    except ValueError:
        return text[:500]
    errors = answer.get("errors") if isinstance(answer, dict) else None
    message = answer.get("message", text[:500]) if isinstance(answer, dict) else text[:500]
    return f"{message} {json.dumps(errors)}" if errors else str(message)


# --- GitHub Actions files ---------------------------------------------------------------------


def set_outputs(**values: str) -> None:
    """Step outputs (`steps.<id>.outputs.<name>`); printed when not running in Actions."""
    lines = "".join(f"{name.replace('_', '-')}={value}\n" for name, value in values.items())
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with Path(target).open("a") as handle:
            handle.write(lines)
    else:
        print(lines, end="")


def add_to_summary(markdown: str) -> None:
    """Append to the job summary (shown on the run page); printed when not running in Actions."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with Path(target).open("a") as handle:
            handle.write(markdown.rstrip("\n") + "\n\n")
    else:
        print(markdown)


def run_url(environ: Mapping[str, str] | None = None) -> str | None:
    """Link to the current workflow run, when running in Actions."""
    env = os.environ if environ is None else environ
    if not (env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID")):
        return None
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
