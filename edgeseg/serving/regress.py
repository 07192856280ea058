"""Regress: tf.Examples in, one value per example out.

Contract (as TF Serving's regressor.cc): the request's examples are run through a
regression signature (examples.py: input handling, deadline, the ``model_spec`` echoed)
whose one output is named ``outputs``, DT_FLOAT [batch] or [batch, 1]; the result holds one
``Regression`` per example, in example order. Any other outputs, or another shape, are
INVALID_ARGUMENT. :func:`regress_with` fills one result; MultiInference
(multi_inference.py) uses it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeseg.errors import InvalidArgument
from edgeseg.serving import signatures
from edgeseg.serving.core_protocol import Core
from edgeseg.serving.examples import answer, check_batch, run_on_examples
from edgeseg.wire.apis import regression_pb2
from edgeseg.wire.schema import Message

OUTPUTS = "outputs"


def regress_with(model: Any, signature: Any, examples: np.ndarray,
                 result: Message, timeout_ms: int = 0) -> None:
    """Run ``signature`` on ``examples`` and add their regressions to ``result``."""
    if OUTPUTS not in signature.outputs or len(signature.outputs) != 1:
        raise InvalidArgument("Expected one output Tensor named outputs.")
    (value,) = run_on_examples(model, signature, examples, [OUTPUTS], timeout_ms)
    check_batch(value, len(examples), OUTPUTS)
    if value.ndim > 2 or (value.ndim == 2 and value.shape[1] != 1):
        raise InvalidArgument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
            f"but got {list(value.shape)}"
        )
    for v in value.reshape(-1):
        result.regressions.add().value = float(v)


def regress(core: Core, request: Any, timeout_ms: int = 0) -> Message:
    """The reply to a RegressionRequest; with ``timeout_ms`` > 0 (a gRPC client's deadline,
    REST's --rest_api_timeout_in_ms) a run past it is DEADLINE_EXCEEDED."""
    return answer(core, request, signatures.REGRESS_METHOD,
                  regression_pb2.RegressionResponse(), regress_with, timeout_ms)
