"""Classify: tf.Examples in, classes and scores out.

Contract (as TF Serving's classifier.cc): the request's examples are run through a
classification signature (examples.py: input handling, deadline, the ``model_spec``
echoed). The signature has a ``scores`` output (DT_FLOAT [batch, classes]) and/or a
``classes`` output (DT_STRING, same shape); the result holds one ``Classifications`` per
example, in example order, with one (label, score) per column. A signature with neither
output, outputs of another rank, or scores of another dtype are INVALID_ARGUMENT.
:func:`classify_with` fills one result; MultiInference (multi_inference.py) uses it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeseg.errors import InvalidArgument
from edgeseg.serving import signatures
from edgeseg.serving.core_protocol import Core
from edgeseg.serving.examples import answer, check_batch, run_on_examples
from edgeseg.serving.tensors import array_dtype_name
from edgeseg.wire.apis import classification_pb2
from edgeseg.wire.schema import Message

CLASSES = "classes"
SCORES = "scores"


def _check_classes_and_scores(values: dict[str, np.ndarray], batch: int) -> None:
    for alias, value in values.items():
        check_batch(value, batch, alias)
        if value.ndim != 2:
            raise InvalidArgument(
                f"Expected Tensor shape: [batch_size num_classes] but got {list(value.shape)} "
                f"for {alias}"
            )
    scores = values.get(SCORES)
    if scores is not None and scores.dtype != np.float32:
        raise InvalidArgument(f"Expected scores Tensor of DT_FLOAT, got "
                              f"{array_dtype_name(scores)}")


def classify_with(model: Any, signature: Any, examples: np.ndarray,
                  result: Message, timeout_ms: int = 0) -> None:
    """Run ``signature`` on ``examples`` and add their classifications to ``result``."""
    aliases = [a for a in (CLASSES, SCORES) if a in signature.outputs]
    if not aliases:
        raise InvalidArgument(
            "Expected classification signature outputs to contain at least one of "
            "classes or scores."
        )
    values = dict(zip(aliases, run_on_examples(model, signature, examples, aliases, timeout_ms),
                      strict=True))
    _check_classes_and_scores(values, len(examples))
    classes, scores = values.get(CLASSES), values.get(SCORES)
    present = scores if scores is not None else classes
    assert present is not None  # the signature check above requires one of them
    width = present.shape[1]
    for i in range(len(examples)):
        classification = result.classifications.add()
        for j in range(width):
            item = classification.classes.add()
            if classes is not None:
                label = classes[i, j]
                item.label = label.decode() if isinstance(label, bytes) else str(label)
            if scores is not None:
                item.score = float(scores[i, j])


def classify(core: Core, request: Any, timeout_ms: int = 0) -> Message:
    """The reply to a ClassificationRequest; with ``timeout_ms`` > 0 (a gRPC client's
    deadline, REST's --rest_api_timeout_in_ms) a run past it is DEADLINE_EXCEEDED."""
    return answer(core, request, signatures.CLASSIFY_METHOD,
                  classification_pb2.ClassificationResponse(), classify_with, timeout_ms)
