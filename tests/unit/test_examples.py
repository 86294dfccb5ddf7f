"""Classify/Regress plumbing: examples tensor, signature contract and result building."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

from tensorserve import dtypes
from tensorserve.errors import Code, ServingError
from tensorserve.servable import (
    CLASSIFY_METHOD,
    PREDICT_METHOD,
    REGRESS_METHOD,
    SignatureSpec,
    TensorSpec,
)
from tensorserve.service.examples import (
    check_classify_signature,
    check_regress_signature,
    classification_result,
    regression_result,
    serialize_examples,
    signature_debug_string,
)

STRING_IN = TensorSpec("tf_example:0", dtypes.DT_STRING, (-1,))
CLASSES = TensorSpec("classes:0", dtypes.DT_STRING, (-1, 2))
SCORES = TensorSpec("scores:0", dtypes.DT_FLOAT, (-1, 2))
VALUES = TensorSpec("y:0", dtypes.DT_FLOAT, (-1, 1))


def sig(
    inputs: Mapping[str, TensorSpec],
    outputs: Mapping[str, TensorSpec],
    method: str = CLASSIFY_METHOD,
) -> SignatureSpec:
    return SignatureSpec("serving_default", method, inputs, outputs)


CLASSIFY_BOTH = sig({"inputs": STRING_IN}, {"classes": CLASSES, "scores": SCORES})
CLASSIFY_CLASSES = sig({"inputs": STRING_IN}, {"classes": CLASSES})
CLASSIFY_SCORES = sig({"inputs": STRING_IN}, {"scores": SCORES})
REGRESS = sig({"inputs": STRING_IN}, {"outputs": VALUES}, REGRESS_METHOD)


def example(**features: list[float] | list[bytes] | list[int]) -> example_pb2.Example:
    proto = example_pb2.Example()
    for name, values in features.items():
        feature = proto.features.feature[name]
        if isinstance(values[0], bytes):
            feature.bytes_list.value.extend(values)
        elif isinstance(values[0], float):
            feature.float_list.value.extend(values)
        else:
            feature.int64_list.value.extend(values)
    return proto


def parse(serialized: bytes) -> example_pb2.Example:
    return example_pb2.Example.FromString(serialized)


def assert_error(error: pytest.ExceptionInfo[ServingError], code: Code, message: str) -> None:
    assert error.value.code == code
    assert message in error.value.message, error.value.message


# -- serialize_examples -----------------------------------------------------------------------


def test_example_list_serializes_each_example() -> None:
    examples = [example(x=[1.0]), example(y=[b"a", b"b"])]
    inp = input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples))
    out = serialize_examples(inp)
    assert out.dtype == object
    assert out.shape == (2,)
    assert [parse(item) for item in out] == examples


def test_context_is_merged_into_every_example() -> None:
    context = example(country=[b"ch"], shared=[1.0])
    examples = [example(age=[30]), example(age=[40], shared=[2.0])]
    inp = input_pb2.Input(
        example_list_with_context=input_pb2.ExampleListWithContext(
            examples=examples, context=context
        )
    )
    out = serialize_examples(inp)
    assert out[0] == context.SerializeToString() + examples[0].SerializeToString()
    first, second = (parse(item) for item in out)
    assert first == example(country=[b"ch"], shared=[1.0], age=[30])
    assert second == example(country=[b"ch"], shared=[2.0], age=[40])  # the example wins


def test_tensorflow_parses_the_merged_examples() -> None:
    inp = input_pb2.Input(
        example_list_with_context=input_pb2.ExampleListWithContext(
            examples=[example(age=[30]), example(age=[40])], context=example(w=[0.5])
        )
    )
    spec = {
        "age": tf.io.FixedLenFeature([], tf.int64),
        "w": tf.io.FixedLenFeature([], tf.float32),
    }
    parsed = tf.io.parse_example(serialize_examples(inp).astype(bytes), spec)
    assert parsed["age"].numpy().tolist() == [30, 40]
    assert parsed["w"].numpy().tolist() == [0.5, 0.5]


def test_missing_context_leaves_examples_unchanged() -> None:
    examples = [example(x=[1.0])]
    inp = input_pb2.Input(
        example_list_with_context=input_pb2.ExampleListWithContext(examples=examples)
    )
    assert serialize_examples(inp).tolist() == [examples[0].SerializeToString()]


@pytest.mark.parametrize(
    "inp",
    [
        input_pb2.Input(),
        input_pb2.Input(example_list=input_pb2.ExampleList()),
        input_pb2.Input(
            example_list_with_context=input_pb2.ExampleListWithContext(context=example(x=[1.0]))
        ),
    ],
    ids=["kind_not_set", "empty_list", "context_only"],
)
def test_empty_input_is_rejected(inp: input_pb2.Input) -> None:
    with pytest.raises(ServingError) as error:
        serialize_examples(inp)
    assert_error(error, Code.INVALID_ARGUMENT, "Input is empty.")
    assert error.value.message == "Input is empty."


# -- signature checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "expected"),
    [
        (CLASSIFY_BOTH, ["classes", "scores"]),
        (sig({"inputs": STRING_IN}, {"scores": SCORES, "classes": CLASSES}), ["classes", "scores"]),
        (CLASSIFY_CLASSES, ["classes"]),
        (CLASSIFY_SCORES, ["scores"]),
        (sig({"inputs": STRING_IN}, {"scores": SCORES}, PREDICT_METHOD), ["scores"]),
    ],
)
def test_classify_signature_accepted(signature: SignatureSpec, expected: list[str]) -> None:
    assert check_classify_signature(signature) == ("inputs", expected)


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (
            sig({"inputs": STRING_IN, "b": STRING_IN}, {"scores": SCORES}),
            "Expected one input Tensor.",
        ),
        (sig({"inputs": STRING_IN}, {}), "Expected one or two output Tensors, found 0"),
        (
            sig({"inputs": STRING_IN}, {"classes": CLASSES, "scores": SCORES, "x": SCORES}),
            "Expected one or two output Tensors, found 3",
        ),
        (
            sig({"examples": STRING_IN}, {"scores": SCORES}),
            "No classification inputs found in SignatureDef: signature 'serving_default' "
            "(tensorflow/serving/classify) takes {examples: DT_STRING [-1]}",
        ),
        (
            sig({"inputs": STRING_IN}, {"probabilities": SCORES}),
            'Expected classification signature outputs to contain at least one of "classes" or '
            "\"scores\". Signature was: signature 'serving_default'",
        ),
        (
            sig({"inputs": TensorSpec("x:0", dtypes.DT_FLOAT, (-1,))}, {"scores": SCORES}),
            "Expects arg[0] to be float but string is provided",
        ),
    ],
)
def test_classify_signature_rejected(signature: SignatureSpec, message: str) -> None:
    with pytest.raises(ServingError) as error:
        check_classify_signature(signature)
    assert_error(error, Code.INVALID_ARGUMENT, message)


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (sig({"inputs": STRING_IN}, {"outputs": VALUES}, PREDICT_METHOD), ""),
        (
            sig({"inputs": STRING_IN, "b": STRING_IN}, {"outputs": VALUES}, REGRESS_METHOD),
            "Expected one input Tensor.",
        ),
        (
            sig({"inputs": STRING_IN}, {"outputs": VALUES, "x": VALUES}, REGRESS_METHOD),
            "Expected one output Tensor.",
        ),
        (sig({"inputs": STRING_IN}, {}, REGRESS_METHOD), "Expected one output Tensor."),
        (
            sig({"x": STRING_IN}, {"outputs": VALUES}, REGRESS_METHOD),
            "No regression inputs found in SignatureDef: signature 'serving_default' "
            "(tensorflow/serving/regress) takes {x: DT_STRING [-1]}",
        ),
        (
            sig({"inputs": STRING_IN}, {"y": VALUES}, REGRESS_METHOD),
            "No regression outputs found in SignatureDef: signature 'serving_default' "
            "(tensorflow/serving/regress) takes {inputs: DT_STRING [-1]}",
        ),
        (
            sig(
                {"inputs": TensorSpec("x:0", dtypes.DT_INT64, None)},
                {"outputs": VALUES},
                REGRESS_METHOD,
            ),
            "Expects arg[0] to be int64 but string is provided",
        ),
    ],
)
def test_regress_signature(signature: SignatureSpec, message: str) -> None:
    if not message:
        assert check_regress_signature(signature) == ("inputs", ["outputs"])
        return
    with pytest.raises(ServingError) as error:
        check_regress_signature(signature)
    assert_error(error, Code.INVALID_ARGUMENT, message)


def test_method_name_check_is_opt_in() -> None:
    predict_classify = sig({"inputs": STRING_IN}, {"scores": SCORES}, PREDICT_METHOD)
    predict_regress = sig({"inputs": STRING_IN}, {"outputs": VALUES}, PREDICT_METHOD)
    assert check_classify_signature(CLASSIFY_SCORES, check_method_name=True)[0] == "inputs"
    assert check_regress_signature(REGRESS, check_method_name=True)[0] == "inputs"
    with pytest.raises(ServingError) as error:
        check_classify_signature(predict_classify, check_method_name=True)
    assert_error(
        error,
        Code.INVALID_ARGUMENT,
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict",
    )
    with pytest.raises(ServingError) as error:
        check_regress_signature(predict_regress, check_method_name=True)
    assert_error(
        error,
        Code.INVALID_ARGUMENT,
        "Expected regression signature method_name to be tensorflow/serving/regress. "
        "Was: tensorflow/serving/predict",
    )


def test_signature_debug_string_is_signature_def_text_format() -> None:
    signature = sig(
        {"inputs": STRING_IN}, {"scores": SCORES, "classes": TensorSpec("c:0", 7, None)}
    )
    assert signature_debug_string(signature) == (
        "inputs {\n"
        '  key: "inputs"\n'
        "  value {\n"
        '    name: "tf_example:0"\n'
        "    dtype: DT_STRING\n"
        "    tensor_shape {\n"
        "      dim {\n"
        "        size: -1\n"
        "      }\n"
        "    }\n"
        "  }\n"
        "}\n"
        "outputs {\n"
        '  key: "classes"\n'
        "  value {\n"
        '    name: "c:0"\n'
        "    dtype: DT_STRING\n"
        "    tensor_shape {\n"
        "      unknown_rank: true\n"
        "    }\n"
        "  }\n"
        "}\n"
        "outputs {\n"
        '  key: "scores"\n'
        "  value {\n"
        '    name: "scores:0"\n'
        "    dtype: DT_FLOAT\n"
        "    tensor_shape {\n"
        "      dim {\n"
        "        size: -1\n"
        "      }\n"
        "      dim {\n"
        "        size: 2\n"
        "      }\n"
        "    }\n"
        "  }\n"
        "}\n"
        'method_name: "tensorflow/serving/classify"\n'
    )


def test_signature_debug_string_scalar_has_empty_shape() -> None:
    signature = sig({"inputs": TensorSpec("x:0", dtypes.DT_STRING, ())}, {})
    assert '    name: "x:0"\n    dtype: DT_STRING\n    tensor_shape {\n    }\n' in (
        signature_debug_string(signature)
    )


# -- classification_result --------------------------------------------------------------------


def labels(*rows: list[bytes]) -> np.ndarray:
    out = np.empty((len(rows), len(rows[0])), dtype=object)
    out[:] = rows
    return out


def text(proto: classification_pb2.ClassificationResult) -> str:
    result: str = text_format.MessageToString(proto, as_one_line=True)
    return result


@pytest.mark.parametrize(
    ("signature", "outputs", "expected"),
    [
        (
            CLASSIFY_BOTH,
            {
                "classes": labels([b"cat", b"dog"], [b"x", b"y"]),
                "scores": np.array([[0.75, 0.25], [0.5, 0.5]], np.float32),
            },
            'classifications { classes { label: "cat" score: 0.75 } classes { label: "dog" '
            'score: 0.25 } } classifications { classes { label: "x" score: 0.5 } classes { '
            'label: "y" score: 0.5 } }',
        ),
        (
            CLASSIFY_SCORES,
            {"scores": np.array([[0.5], [1.5]], np.float32)},
            "classifications { classes { score: 0.5 } } classifications { classes { score: 1.5 } }",
        ),
        (
            CLASSIFY_CLASSES,
            {"classes": labels([b"a"], ["é".encode()])},
            'classifications { classes { label: "a" } } classifications { classes { label: "é" } }',
        ),
        (
            CLASSIFY_CLASSES,
            {"classes": np.array([["a"], ["b"]])},
            'classifications { classes { label: "a" } } classifications { classes { label: "b" } }',
        ),
        (
            CLASSIFY_SCORES,
            {"scores": np.zeros((2, 0), np.float32)},
            "classifications { } classifications { }",
        ),
    ],
    ids=["both", "scores_only", "classes_only", "unicode_classes", "zero_classes"],
)
def test_classification_result(
    signature: SignatureSpec, outputs: dict[str, np.ndarray], expected: str
) -> None:
    assert text(classification_result(outputs, 2, signature)) == expected


def test_invalid_utf8_labels_are_replaced() -> None:
    result = classification_result({"classes": labels([b"\xffa"])}, 1, CLASSIFY_CLASSES)
    assert result.classifications[0].classes[0].label == "\ufffda"


GOOD_CLASSES = labels([b"a", b"b"], [b"c", b"d"])
GOOD_SCORES = np.ones((2, 2), np.float32)


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"classes": GOOD_CLASSES}, "Expected 2 output tensor(s).  Got: 1"),
        (
            {"classes": np.array([b"a", b"b"], dtype=object), "scores": GOOD_SCORES},
            "Expected Tensor shape: [batch_size num_classes] but got [2]",
        ),
        (
            {"classes": np.ones((2, 2), np.float32), "scores": GOOD_SCORES},
            "Expected classes Tensor of DT_STRING. Got: DT_FLOAT",
        ),
        (
            {"classes": GOOD_CLASSES[:1], "scores": GOOD_SCORES},
            "Expected classes output batch size of 2. Got: 1",
        ),
        (
            {"classes": GOOD_CLASSES, "scores": np.ones((2, 2, 1), np.float32)},
            "Expected Tensor shape: [batch_size num_classes] but got [2,2,1]",
        ),
        (
            {"classes": GOOD_CLASSES, "scores": np.ones((2, 2), np.float64)},
            "Expected scores Tensor of DT_FLOAT. Got: DT_DOUBLE",
        ),
        (
            {"classes": GOOD_CLASSES, "scores": np.ones((3, 2), np.float32)},
            "Expected scores output batch size of 2. Got: 3",
        ),
        (
            {"classes": GOOD_CLASSES, "scores": np.ones((2, 3), np.float32)},
            "Tensors class and score should match in dim_size(1). Got 2 vs. 3",
        ),
    ],
    ids=[
        "missing_output",
        "classes_rank",
        "classes_dtype",
        "classes_batch",
        "scores_rank",
        "scores_dtype",
        "scores_batch",
        "num_classes_mismatch",
    ],
)
def test_classification_result_rejected(outputs: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(ServingError) as error:
        classification_result(outputs, 2, CLASSIFY_BOTH)
    assert_error(error, Code.INVALID_ARGUMENT, message)


# -- regression_result ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [np.array([1.5, -2.0], np.float32), np.array([[1.5], [-2.0]], np.float32)],
    ids=["batch", "batch_by_1"],
)
def test_regression_result(values: np.ndarray) -> None:
    result = regression_result({"outputs": values}, 2, REGRESS)
    expected = regression_pb2.RegressionResult()
    expected.regressions.add(value=1.5)
    expected.regressions.add(value=-2.0)
    assert result == expected


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({}, "Could not find output tensor 'y:0'"),
        (
            {"outputs": np.ones((2, 2), np.float32)},
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            "[2,2]",
        ),
        ({"outputs": np.float32(1.0) * np.ones((), np.float32)}, "but got []"),
        (
            {"outputs": np.ones(3, np.float32)},
            "Input batch size did not match output batch size: 2 vs. 3",
        ),
        (
            {"outputs": np.ones(2, np.float64)},
            "Expected output Tensor of DT_FLOAT.  Got: DT_DOUBLE",
        ),
    ],
    ids=["missing", "rank2", "scalar", "batch", "dtype"],
)
def test_regression_result_rejected(outputs: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(ServingError) as error:
        regression_result(outputs, 2, REGRESS)
    assert_error(error, Code.INVALID_ARGUMENT, message)


def test_regression_result_without_outputs_in_signature_is_failed_precondition() -> None:
    signature = sig({"inputs": STRING_IN}, {"y": VALUES}, REGRESS_METHOD)
    with pytest.raises(ServingError) as error:
        regression_result({"outputs": np.ones(2, np.float32)}, 2, signature)
    assert_error(
        error,
        Code.FAILED_PRECONDITION,
        "No regression outputs found in SignatureDef: signature 'serving_default'",
    )
