"""The one status mapping of the gRPC transport: every Status to the gRPC code of its number."""

from __future__ import annotations

import grpc
import pytest

from edgeseg.errors import EdgesegError, FailedPrecondition, InvalidArgument, NotFound, Status
from edgeseg.serving.grpc_api import grpc_code


@pytest.mark.parametrize("status", list(Status))
def test_every_status_maps_to_the_same_grpc_code(status):
    code = grpc_code(EdgesegError("x", status))
    assert code.value[0] == int(status)
    assert code.name == status.name


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_subclasses(error, code):
    assert grpc_code(error) is code
