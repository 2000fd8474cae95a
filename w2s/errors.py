"""User-facing errors: one clear line, a non-zero exit, nothing half-written."""


class W2SError(Exception):
    """An error caused by user input (config, data, paths) that the CLI prints as one line."""


class ConfigError(W2SError):
    """The configuration names an unknown key, has a wrong type, or points at a missing file."""


class DataError(W2SError):
    """The input data cannot be read or does not have the expected shape."""


class ValidationFailed(W2SError):
    """A Great Expectations gate failed; the message lists each failed expectation and column."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


class IntegrityError(W2SError):
    """A downloaded or loaded artifact does not match the digest its registry entry recorded."""


class ServiceUnavailable(W2SError):
    """A service the run needs (MLflow tracking server, DVC remote) did not answer; retryable."""


def redact(text: str) -> str:
    """`text` with the password of every `scheme://user:password@host` URI replaced by `***`, so
    that no error, hint or log line repeats a credential."""
    import re

    return re.sub(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+):[^/\s@]+@", r"\1:***@", text)
