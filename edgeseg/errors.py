"""One error hierarchy for the whole kit.

Every error the kit raises on purpose is an :class:`EdgesegError` carrying a
:class:`Status` (the gRPC canonical codes, which TensorFlow Serving also uses).
Transports map the status once: the gRPC adapter to ``grpc.StatusCode``, the REST
adapter to an HTTP code, the CLI to an exit code and one line on stderr. Messages
name what is wrong and what was expected; they never carry a traceback.
"""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """Canonical status codes (numbering as google.rpc.Code and grpc.StatusCode)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class EdgesegError(Exception):
    """Base of every deliberate error; ``status`` says which kind it is."""

    status: Status = Status.UNKNOWN

    def __init__(self, message: str, status: Status | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class InvalidArgument(EdgesegError):
    """The caller sent something malformed: a bad flag, file, tensor or body."""

    status = Status.INVALID_ARGUMENT


class NotFound(EdgesegError):
    """A model, version, file or key that does not exist."""

    status = Status.NOT_FOUND


class AlreadyExists(EdgesegError):
    """Refusing to overwrite something (e.g. an exported version without --force)."""

    status = Status.ALREADY_EXISTS


class FailedPrecondition(EdgesegError):
    """The request is well formed but the system is not in a state to serve it."""

    status = Status.FAILED_PRECONDITION


class PermissionDenied(EdgesegError):
    status = Status.PERMISSION_DENIED


class ResourceExhausted(EdgesegError):
    """A bounded queue or a memory budget is full."""

    status = Status.RESOURCE_EXHAUSTED


class Unavailable(EdgesegError):
    """A peer (server, broker, camera) cannot be reached right now; retrying may help."""

    status = Status.UNAVAILABLE


class DeadlineExceeded(EdgesegError):
    status = Status.DEADLINE_EXCEEDED


class Unimplemented(EdgesegError):
    status = Status.UNIMPLEMENTED


class Internal(EdgesegError):
    """A bug or an invariant broken inside the kit."""

    status = Status.INTERNAL


class DataLoss(EdgesegError):
    """Unreadable or corrupt data (a truncated model file, a broken proto)."""

    status = Status.DATA_LOSS
