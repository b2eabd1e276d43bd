"""Two kinds of failure, and one classifier every handler asks: retry, or reject / dead-letter.

- **retryable**: the same input may succeed later with nobody changing anything: a busy lock,
  the deadline, throttling, a dropped connection. The handler hands the work back (the message
  returns to the queue, the invocation fails for Lambda's retry, the next scheduled run continues).
- **permanent**: the same input fails the same way until someone changes the input or the
  configuration: a malformed row or file, an unknown table name, a changed migration. The handler
  rejects it (records why, stops retrying) or, when it is not the input's fault, lets it reach
  the dead-letter queue for an operator.

Every exception a pipeline raises on purpose derives from `RetryableError` or `PermanentError`
(keeping a builtin base such as `ValueError` where callers expect one). `is_retryable` classifies
those by their kind and the errors of drivers and AWS by what they mean; anything else counts as
retryable, because the queue's redrive policy bounds retries and a dead letter keeps the message.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of the errors pipelines raise on purpose; `retryable` says which kind it is."""

    retryable: bool = True

    def __init__(self, *args: object, retryable: bool | None = None) -> None:
        super().__init__(*args)
        if retryable is not None:
            # An aggregate (a run of several tables) is retryable only when each part is.
            self.retryable = retryable


class RetryableError(PipelineError):
    """May succeed on a later try. `retry_after_seconds`, when set, is how soon a retry makes
    sense (a queue message is made visible again after it); None leaves the trigger's own back-off."""

    retryable = True
    retry_after_seconds: float | None = None


class PermanentError(PipelineError):
    """Fails the same way until the input or the configuration changes."""

    retryable = False


# AWS error codes that say "not now" rather than "not this" (throttling, server side trouble).
RETRYABLE_AWS_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "TransactionConflictException",
    }
)

# MySQL/MariaDB error numbers worth another try: lock wait timeout, deadlock, query interrupted
# (max_statement_time), server gone away, lost connection.
RETRYABLE_MYSQL_ERRORS = frozenset({1205, 1213, 1317, 1969, 3024, 2006, 2013})


def is_retryable(exc: BaseException) -> bool:
    """Whether trying the same input again later may succeed."""
    if isinstance(exc, PipelineError):
        return exc.retryable
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    driver = type(exc).__module__.split(".")[0]
    if driver == "psycopg2":
        # OperationalError covers lost connections, cancelled statements (statement_timeout),
        # deadlocks, serialisation failures and lock timeouts; the rest are about the SQL or data.
        import psycopg2

        return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)
    if driver == "pymysql":
        import pymysql

        if isinstance(exc, pymysql.err.InterfaceError):
            return True
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return isinstance(exc, pymysql.err.OperationalError) and (code is None or code in RETRYABLE_MYSQL_ERRORS)
    if driver == "pyodbc":
        import pyodbc

        return isinstance(exc, pyodbc.OperationalError | pyodbc.InterfaceError)
    if driver == "botocore":
        from botocore.exceptions import ClientError, NoCredentialsError, ParamValidationError

        if isinstance(exc, ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return aws_error_code(exc) in RETRYABLE_AWS_CODES or int(status) >= 500
        # Endpoint unreachable, read timeouts: retryable. Bad parameters or no credentials: not.
        return not isinstance(exc, ParamValidationError | NoCredentialsError)
    return True


def aws_error_code(exc: BaseException) -> str | None:
    """The code of an AWS error (`ClientError`: `ThrottlingException`, `ConditionalCheckFailedException`),
    None for any other exception."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    return response.get("Error", {}).get("Code") or None


# Severities of the messages a PostgreSQL server sends before it closes a connection.
_SERVER_SEVERITIES = ("FATAL:", "PANIC:", "ERROR:")


def error_message(exc: BaseException, connection: object = None) -> str:
    """The message of `exc` for a ledger or a result, with the server's own reason when a
    PostgreSQL server ended the connection.

    When the server closes a connection mid-statement (`pg_terminate_backend`, a restart, a
    failover), psycopg2 raises what the client saw last, "invalid socket" or "server closed the
    connection unexpectedly", while the server's message ("terminating connection due to
    administrator command") stays in libpq's error text on the connection. That reason leads, the
    client's words follow in parentheses. `connection` is where to look when the exception does
    not carry its cursor.
    """
    message = str(exc).strip()
    if type(exc).__module__.split(".")[0] != "psycopg2" or getattr(exc, "pgcode", None):
        return message
    connection = connection or getattr(getattr(exc, "cursor", None), "connection", None)
    try:
        text = connection.info.error_message or ""  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - no connection, or one psycopg2 no longer describes
        return message
    reasons = [
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith(_SERVER_SEVERITIES)
    ]
    new = [reason for reason in dict.fromkeys(reasons) if reason and reason not in message]
    if not new:
        return message
    client = " ".join(line.strip() for line in message.splitlines() if line.strip())
    return f"{'; '.join(new)} ({client})" if client else "; ".join(new)
