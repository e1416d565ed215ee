"""The engine's exceptions; each carries the protocol error code a client sees."""


class StepEditError(Exception):
    """Base of every error StepEdit reports to a user.

    Attributes:
        code: Stable machine-readable code, one of ``bridge.protocol.ERROR_CODES``.
    """

    code = "internal"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class EditError(StepEditError, ValueError):
    """The requested edit is not in the vocabulary or its options are invalid."""

    code = "invalid_edit"


class UnsupportedEditError(EditError):
    """The edit is valid, but the running backend cannot render it."""

    code = "unsupported"


class InputError(StepEditError, ValueError):
    """The input audio cannot be used (missing, not audio, corrupt, silent, too long...)."""

    code = "bad_request"


class ForbiddenPathError(StepEditError, PermissionError):
    """A path lies outside the folders the engine was configured to read or write."""

    code = "forbidden_path"


class OutputError(StepEditError, OSError):
    """The result cannot be written where the request asked."""

    code = "output_unwritable"


class BackendError(StepEditError, RuntimeError):
    """The backend failed to load or to render."""

    code = "backend_failed"


class CheckpointError(BackendError, OSError):
    """A model directory lacks a file or holds a malformed one."""

    code = "checkpoint"


class JobError(StepEditError):
    """A job operation failed (unknown job, queue full, engine stopping)."""

    code = "unknown_job"


class QueueFullError(JobError):
    """The queue holds as many waiting jobs as it may.

    Attributes:
        retry_after: Seconds after which a resend is likely to be accepted.
    """

    code = "queue_full"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JobCancelled(StepEditError):  # noqa: N818 - a state, not a failure
    """Raised inside a render when its job was cancelled."""

    code = "cancelled"
