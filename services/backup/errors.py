"""The one error the backup service's operations raise: a one-line message for the operator."""


class BackupError(RuntimeError):
    """An operation failed; the message says what failed and where to look."""
