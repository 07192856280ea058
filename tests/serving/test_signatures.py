"""Signature lookup and request checks, with TF Serving's statuses and messages."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tensorflow.core.protobuf import meta_graph_pb2

from edgeseg.errors import FailedPrecondition, InvalidArgument
from edgeseg.model_contract import PREDICT_METHOD_NAME
from edgeseg.serving import signatures


def tensor_info(name, dtype, dims=None):
    info = meta_graph_pb2.TensorInfo(name=name, dtype=dtype)
    if dims is None:
        info.tensor_shape.unknown_rank = True
    for d in dims or []:
        info.tensor_shape.dim.add(size=d)
    return info


def tutorial_signature():
    sig = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD_NAME)
    sig.inputs["images"].CopyFrom(tensor_info("images:0", 1, [1, -1, -1, 3]))
    sig.inputs["height"].CopyFrom(tensor_info("height:0", 3, [1]))
    sig.inputs["width"].CopyFrom(tensor_info("width:0", 3, [1]))
    sig.outputs["segmentation_map"].CopyFrom(tensor_info("map:0", 9, [1, -1, -1]))
    sig.outputs["logits"].CopyFrom(tensor_info("logits:0", 1))
    return sig


GOOD = {"images": np.zeros((1, 5, 7, 3), np.float32), "height": np.int32([5]),
        "width": np.int32([7])}


def test_empty_name_means_serving_default():
    sig = tutorial_signature()
    assert signatures.find_signature({"serving_default": sig}, "") == ("serving_default", sig)


def test_unknown_signature_is_failed_precondition():
    with pytest.raises(FailedPrecondition, match='Serving signature key "nope" not found.'):
        signatures.find_signature({"serving_default": tutorial_signature()}, "nope")


def test_good_inputs_pass():
    signatures.check_inputs(tutorial_signature(), GOOD)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"images": np.zeros((1, 5, 7, 3), np.uint8)},
         "input 'images': expected dtype DT_FLOAT, got DT_UINT8"),
        ({"height": np.int64([5])}, "input 'height': expected dtype DT_INT32, got DT_INT64"),
        ({"width": np.array([b"7"], dtype=object)}, "got DT_STRING"),
        ({"extra": np.int32([1])}, r"Sent extra: \{extra\}\. Missing but required: \{\}\."),
        ({"height": None}, r"Missing but required: \{height\}\."),
    ],
)
def test_bad_inputs_name_the_input_and_what_was_expected(change, complaint):
    inputs = {**GOOD, **change}
    inputs = {k: v for k, v in inputs.items() if v is not None}
    with pytest.raises(InvalidArgument, match=complaint):
        signatures.check_inputs(tutorial_signature(), inputs)


@pytest.mark.parametrize(
    ("images", "complaint"),
    [
        (np.zeros((5, 7, 3), np.float32),
         r"input 'images': expected shape \[1,-1,-1,3\], got \[5,7,3\] \(ConcatOp failed\)"),
        (np.zeros((2, 5, 7, 3), np.float32), r"got \[2,5,7,3\]"),
        (np.zeros((1, 5, 7, 3), np.float32), r"^ConcatOp failed$"),  # shapes fine: as it was
    ],
)
def test_a_failed_run_blames_the_inputs_outside_the_signature(images, complaint):
    failure = InvalidArgument("ConcatOp failed")
    explained = signatures.explain_failure(tutorial_signature(), {**GOOD, "images": images},
                                           failure)
    assert explained.status is failure.status
    assert re.search(complaint, explained.message)


def test_shapes_are_not_refused_before_running():
    signatures.check_inputs(tutorial_signature(), {**GOOD, "images": np.zeros((7, 3), np.float32)})


def test_a_signature_without_shapes_takes_any_shape():
    sig = meta_graph_pb2.SignatureDef()
    sig.inputs["x"].CopyFrom(meta_graph_pb2.TensorInfo(name="x:0", dtype=1))  # no tensor_shape
    value = np.zeros((2, 1), np.float32)
    assert signatures.shape_problem("x", sig.inputs["x"], value) is None
    sig.inputs["x"].tensor_shape.SetInParent()  # an explicit [] is a scalar
    assert signatures.shape_problem("x", sig.inputs["x"], value) == (
        "input 'x': expected shape [], got [2,1]")


def test_output_filter():
    sig = tutorial_signature()
    assert signatures.select_outputs(sig, []) == ["logits", "segmentation_map"]
    assert signatures.select_outputs(sig, ["segmentation_map"]) == ["segmentation_map"]
    with pytest.raises(InvalidArgument, match="output tensor alias not found in signature: z"):
        signatures.select_outputs(sig, ["z"])
    with pytest.raises(InvalidArgument, match="duplicate output tensor alias"):
        signatures.select_outputs(sig, ["logits", "logits"])


def test_method_name_check_only_when_enabled():
    sig = tutorial_signature()
    signatures.check_method("s", sig, signatures.CLASSIFY_METHOD, enabled=False)
    with pytest.raises(InvalidArgument, match="method_name to be tensorflow/serving/classify"):
        signatures.check_method("s", sig, signatures.CLASSIFY_METHOD, enabled=True)
