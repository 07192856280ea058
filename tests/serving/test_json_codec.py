"""REST JSON <-> arrays on tables: TF Serving's row and columnar formats, and bad bodies."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tensorflow.core.protobuf import meta_graph_pb2

from edgeseg.errors import InvalidArgument
from edgeseg.serving.json_codec import predict_inputs, predict_outputs

F, I32, STR, B = 1, 3, 7, 10  # DT_FLOAT, DT_INT32, DT_STRING, DT_BOOL


def inputs(**dtypes):
    return {name: meta_graph_pb2.TensorInfo(name=f"{name}:0", dtype=d)
            for name, d in dtypes.items()}


ONE = inputs(x=F)
TUTORIAL = inputs(images=F, height=I32, width=I32)


@pytest.mark.parametrize(
    ("body", "signature", "expected", "row"),
    [
        ({"instances": [2.0, 3.0, 4.0]}, ONE, {"x": np.float32([2, 3, 4])}, True),
        ({"instances": [[1], [2]]}, ONE, {"x": np.float32([[1], [2]])}, True),
        ({"instances": [{"x": [1.0]}, {"x": [2.0]}]}, ONE, {"x": np.float32([[1], [2]])}, True),
        ({"inputs": [[1.0], [2.0]]}, ONE, {"x": np.float32([[1], [2]])}, False),
        ({"inputs": {"x": 5}}, ONE, {"x": np.float32(5)}, False),
        ({"signature_name": "s", "inputs": {"images": [[[[0, 1, 2]]]], "height": [1],
                                            "width": [1]}},
         TUTORIAL, {"images": np.float32([[[[0, 1, 2]]]]), "height": np.int32([1]),
                    "width": np.int32([1])}, False),
        ({"instances": [{"b64": "aGk="}, "plain"]}, inputs(s=STR),
         {"s": np.array([b"hi", b"plain"], dtype=object)}, True),
        ({"instances": [True, False]}, inputs(b=B), {"b": np.bool_([True, False])}, True),
    ],
)
def test_requests(body, signature, expected, row):
    got, row_format = predict_inputs(body, signature)
    assert row_format is row and set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape
        assert np.array_equal(got[name], value)


def test_large_numeric_bodies_take_the_fast_path_with_the_same_result():
    frame = np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3))
    got, _ = predict_inputs({"instances": frame.tolist()}, inputs(images=4))  # DT_UINT8
    assert got["images"].dtype == np.uint8 and np.array_equal(got["images"], frame)
    got, _ = predict_inputs({"inputs": [[1, 2.5], [math.nan, -3]]}, ONE)
    assert got["x"].dtype == np.float32 and np.isnan(got["x"][1, 0])


def test_nan_and_infinity_are_numbers():
    got, _ = predict_inputs({"instances": [math.nan, math.inf]}, ONE)
    assert np.isnan(got["x"][0]) and np.isinf(got["x"][1])


@pytest.mark.parametrize(
    ("body", "signature", "complaint"),
    [
        ([1, 2], ONE, "must be a JSON object"),
        ({}, ONE, "exactly one of 'instances'"),
        ({"instances": [1], "inputs": [1]}, ONE, "exactly one of"),
        ({"instances": [1], "extra": 1}, ONE, "unknown key"),
        ({"instances": []}, ONE, "non-empty list"),
        ({"instances": [[1, 2], [3]]}, ONE, "ragged"),
        ({"instances": ["a"]}, ONE, "expected a number for DT_FLOAT, got a string"),
        ({"instances": [{"x": 1}, {"y": 2}]}, ONE, "instances\\[1\\] names inputs"),
        ({"instances": [1.5]}, inputs(i=I32), "expected an integer"),
        ({"instances": [2**40]}, inputs(i=I32), "out of range for DT_INT32"),
        ({"instances": [1e300]}, ONE, "out of range"),
        ({"instances": [math.inf, 1e300]}, ONE, "out of range"),
        ({"instances": [[1, 2], [3, "4"]]}, inputs(i=I32), "expected a number"),
        ({"instances": [[1.0, 2.0]]}, inputs(i=I32), "expected an integer"),
        ({"instances": [[True, 1]]}, ONE, "got a boolean"),
        ({"instances": [{"b64": "!!"}]}, inputs(s=STR), "not valid base64"),
        ({"instances": [1]}, TUTORIAL, "takes 3 inputs"),
        ({"inputs": {"nope": 1}}, ONE, "no input 'nope'"),
        ({"instances": [None]}, ONE, "got null"),
        ({"instances": [1]}, inputs(b=B), "expected true or false"),
    ],
)
def test_bad_bodies_say_what_is_wrong(body, signature, complaint):
    with pytest.raises(InvalidArgument, match=complaint):
        predict_inputs(body, signature)


@pytest.mark.parametrize(
    ("outputs", "row", "expected"),
    [
        ({"y": np.float32([3.0, 3.5, 4.0])}, True, {"predictions": [3.0, 3.5, 4.0]}),
        ({"y": np.float32([0.1])}, True, {"predictions": [0.1]}),  # float32 shortest text
        ({"y": np.float32([[3.0], [3.5]])}, False, {"outputs": [[3.0], [3.5]]}),
        ({"a": np.int64([1, 2]), "b": np.float32([0.5, 1.5])}, True,
         {"predictions": [{"a": 1, "b": 0.5}, {"a": 2, "b": 1.5}]}),
        ({"a": np.int64([1, 2]), "b": np.float32(7)}, False, {"outputs": {"a": [1, 2], "b": 7.0}}),
        ({"label": np.array([b"cat"], dtype=object)}, True, {"predictions": ["cat"]}),
        ({"png_bytes": np.array([b"\x89P"], dtype=object)}, True,
         {"predictions": [{"b64": "iVA="}]}),
    ],
)
def test_responses(outputs, row, expected):
    assert predict_outputs(outputs, row) == expected


def test_row_format_needs_one_batch_size():
    with pytest.raises(InvalidArgument, match="columnar"):
        predict_outputs({"a": np.int64([1, 2]), "b": np.int64([1])}, True)


def test_examples_become_tf_examples():
    from edgeseg.serving.json_codec import examples_input

    got = examples_input({"examples": [{"x": 2.0, "n": [1, 2], "s": "a", "b": {"b64": "aGk="},
                                        "mixed": [1, 2.5]}]})
    feature = got.example_list.examples[0].features.feature
    assert list(feature["x"].float_list.value) == [2.0]
    assert list(feature["n"].int64_list.value) == [1, 2]
    assert list(feature["s"].bytes_list.value) == [b"a"]
    assert list(feature["b"].bytes_list.value) == [b"hi"]
    assert list(feature["mixed"].float_list.value) == [1.0, 2.5]
    with_context = examples_input({"context": {"x": 2.0}, "examples": [{}, {"y": 1}]})
    assert with_context.example_list_with_context.context.features.feature["x"].float_list.value
    assert len(with_context.example_list_with_context.examples) == 2


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"examples": []}, "non-empty list"),
        ({"examples": [1]}, "expected an object of features"),
        ({"examples": [{"x": [1, "a"]}]}, "one kind"),
        ({"examples": [{"x": True}]}, "one kind"),
        ({"examples": [{"x": 2**70}]}, "out of range"),
        ({"examples": [{"x": 1}], "context": {"x": 2}}, "also in 'context'"),
        ({"examples": [{"x": 1}], "instances": []}, "unknown key"),
    ],
)
def test_bad_examples(body, complaint):
    from edgeseg.serving.json_codec import examples_input

    with pytest.raises(InvalidArgument, match=complaint):
        examples_input(body)


def test_classification_and_regression_json():
    from tensorflow_serving.apis import classification_pb2, regression_pb2

    from edgeseg.serving.json_codec import classification_json, regression_json

    result = classification_pb2.ClassificationResult()
    first = result.classifications.add()
    first.classes.add(label="car", score=0.2)
    first.classes.add(label="bike", score=0.7)
    result.classifications.add().classes.add(score=3.0)
    assert classification_json(result) == {"results": [[["car", 0.2], ["bike", 0.7]],
                                                       [["", 3.0]]]}
    regression = regression_pb2.RegressionResult()
    regression.regressions.add(value=0.1)
    assert regression_json(regression) == {"results": [0.1]}
