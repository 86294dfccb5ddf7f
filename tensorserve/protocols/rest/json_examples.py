"""Classify/regress request bodies (``instances`` / ``examples`` with ``context``) as the
``Input`` proto of tf.Examples, with TF Serving's rules and messages."""

from __future__ import annotations

from typing import Any

from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import input_pb2

from tensorserve import dtypes
from tensorserve.errors import InvalidArgument
from tensorserve.protocols.rest.json_common import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    BadValue,
    is_b64,
    json_type,
    require_object,
    snippet,
)
from tensorserve.protocols.rest.json_decode import (
    as_double,
    leaf_real,
    leaf_string,
    signature_name,
)

# --------------------------------------------------------------- classify / regress


def parse_examples(doc: Any) -> tuple[str, input_pb2.Input]:
    """Classify/regress body -> (signature name or "", ``Input`` of tf.Examples).

    With ``context`` the Input holds ``example_list_with_context``, else
    ``example_list``. Feature kinds follow TF Serving: strings and b64
    objects -> bytes_list, numbers with a fraction/exponent -> float_list,
    integers and booleans -> int64_list. Raises InvalidArgument otherwise.
    """
    obj = require_object(doc)
    signature = signature_name(obj)
    request_input = input_pb2.Input()
    has_context = "context" in obj
    if has_context:
        context = request_input.example_list_with_context.context
        context.SetInParent()
        _fill_example(obj["context"], context)
    examples = _examples_list(obj)
    target = (
        request_input.example_list_with_context.examples
        if has_context
        else request_input.example_list.examples
    )
    for value in examples:
        _fill_example(value, target.add())
    return signature, request_input


def _examples_list(obj: dict[str, Any]) -> list[Any]:
    if "examples" not in obj:
        raise InvalidArgument(
            f"JSON Value: {snippet(obj)} When method is classify, key 'examples' is "
            "expected and was not found"
        )
    examples = obj["examples"]
    if type(examples) is not list:
        raise InvalidArgument(
            f"JSON Value: {snippet(obj)} Expecting 'examples' value to be an list/array"
        )
    if not examples:
        raise InvalidArgument(f"JSON Value: {snippet(obj)} 'examples' value is an empty array")
    return examples


def _fill_example(value: Any, example: example_pb2.Example) -> None:
    if type(value) is not dict:
        raise InvalidArgument(f"Example must be JSON object but got JSON {json_type(value)}")
    features = example.features.feature
    for name, content in value.items():
        items = content if type(content) is list else [content]
        _fill_feature(name, items, features[name])


def _fill_feature(name: str, items: list[Any], feature: feature_pb2.Feature) -> None:
    kind: str | None = None
    values: list[Any] = []
    for item in items:
        item_kind = _feature_kind(name, item)
        if kind is not None and item_kind != kind:
            raise InvalidArgument(
                f"Unexpected element type in feature: {name} expecting type: {kind}"
            )
        kind = item_kind
        values.append(_feature_value(name, item, item_kind))
    if kind == "bytes":
        feature.bytes_list.value.extend(values)
    elif kind == "float":
        feature.float_list.value.extend(values)
    elif kind == "int64":
        feature.int64_list.value.extend(values)


def _feature_kind(name: str, item: Any) -> str:
    kind = type(item)
    if kind is str or is_b64(item):
        return "bytes"
    if kind is bool:
        return "int64"
    if kind is int:
        return "int64" if INT64_MIN <= item <= UINT64_MAX else "float"
    if kind is float:
        return "float"
    raise InvalidArgument(
        f"Feature: {name} has element with unexpected JSON type: {json_type(item)}"
    )


def _feature_value(name: str, item: Any, kind: str) -> Any:
    try:
        if kind == "bytes":
            return leaf_string(item)
        if kind == "float":
            value = as_double(item) if type(item) is int else item
            return leaf_real(value, dtypes.DT_FLOAT)
    except BadValue as err:
        raise InvalidArgument(f"{err.message} (feature: '{name}')") from None
    if item > INT64_MAX:
        raise InvalidArgument(f"Feature: {name} has uint64 element. Only int64 is supported.")
    return int(item)
