"""The hand-written JSON Schema subset (edgeseg.json_schema) on tables, and against
``jsonschema`` where that dev extra is installed."""

import pytest

from edgeseg.json_schema import schema_errors
from edgeseg.mqtt_contract import meta_schema

from .test_mqtt_contract import good_meta


@pytest.mark.parametrize("change, problem", [
    (lambda m: m, None),
    (lambda m: m.pop("frame_id"), "$: missing 'frame_id'"),
    (lambda m: m.update(frame_id=-1), "$.frame_id: -1 < minimum 0"),
    (lambda m: m.update(frame_id=True), "$.frame_id: expected integer, got bool"),
    (lambda m: m.update(width="4"), "$.width: expected integer, got str"),
    (lambda m: m.update(extra=1), "$: unexpected key 'extra'"),
    (lambda m: m["model"].update(version="1"), "$.model.version: expected integer/null"),
    (lambda m: m["classes"][0].update(fraction=1.5), "$.classes[0].fraction: 1.5 > maximum 1"),
    (lambda m: m["latency_ms"].pop("total"), "$.latency_ms: missing 'total'"),
    (lambda m: m.update(schema="edgeseg.meta/2"), "$.schema: must be 'edgeseg.meta/1'"),
])
def test_meta_schema_table(change, problem):
    meta = good_meta()
    change(meta)
    errors = schema_errors(meta, meta_schema())
    if problem is None:
        assert errors == []
    else:
        assert any(problem in e for e in errors), errors


@pytest.mark.parametrize("schema, value, errors", [
    ({"enum": ["a", "b"]}, "c", ["$: must be one of ['a', 'b']"]),
    ({"type": "array", "items": {"type": "number"}}, [1, "x"], ["$[1]: expected number, got str"]),
    ({"type": "number", "minimum": 0}, 0, []),
    ({"type": "boolean"}, 1, ["$: expected boolean, got int"]),
])
def test_keywords(schema, value, errors):
    assert schema_errors(value, schema) == errors


@pytest.mark.parametrize("change", [
    lambda m: m, lambda m: m.pop("frame_id"), lambda m: m.update(extra=1),
    lambda m: m["model"].update(version="1"), lambda m: m["classes"][0].update(fraction=2),
])
def test_hand_validator_agrees_with_jsonschema(change):
    jsonschema = pytest.importorskip("jsonschema")  # a dev extra; the agent does not need it
    schema = meta_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    meta = good_meta()
    change(meta)
    ours = schema_errors(meta, schema) == []
    theirs = jsonschema.Draft202012Validator(schema).is_valid(meta)
    assert ours == theirs
