"""Classify/Regress plumbing shared by every protocol: ``Input`` -> serialized examples,
signature checks, fetched outputs -> result protos.

Mirrors TF Serving's ``servables/tensorflow/util.cc`` (``InputToSerializedExampleTensor``),
``classifier.cc`` and ``regressor.cc`` (``PreProcess*`` / ``PostProcess*``), messages and
status codes included. Signatures are looked up by the caller; these functions only check
the classify/regress contract of the one that was found.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

from tensorserve import dtypes, shapes
from tensorserve.errors import FailedPrecondition, InvalidArgument
from tensorserve.servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    Servable,
    SignatureSpec,
    TensorSpec,
)
from tensorserve.service.tensors import format_shape

CLASSIFY_INPUTS: Final = "inputs"
CLASSIFY_OUTPUT_CLASSES: Final = "classes"
CLASSIFY_OUTPUT_SCORES: Final = "scores"
REGRESS_INPUTS: Final = "inputs"
REGRESS_OUTPUTS: Final = "outputs"


def serialize_examples(inp: input_pb2.Input) -> np.ndarray:
    """1-D ``object`` array of serialized ``tf.Example`` bytes, one per example.

    With ``example_list_with_context`` each element is the serialized context followed by the
    serialized example, which protobuf parsing merges (example features win on conflicts;
    repeated values are concatenated). No examples -> ``InvalidArgument("Input is empty.")``.
    """
    kind = inp.WhichOneof("kind")
    if kind == "example_list":
        serialized = [example.SerializeToString() for example in inp.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = inp.example_list_with_context
        context = with_context.context.SerializeToString()
        serialized = [context + example.SerializeToString() for example in with_context.examples]
    else:
        serialized = []
    if not serialized:
        raise InvalidArgument("Input is empty.")
    out = np.empty(len(serialized), dtype=object)
    out[:] = serialized
    return out


def check_classify_signature(
    signature: SignatureSpec, *, check_method_name: bool = False
) -> tuple[str, list[str]]:
    """Validate the classify contract; return (input key, output keys to fetch).

    Output keys are ``classes`` and/or ``scores``, in that order. ``check_method_name``
    mirrors ``--enable_signature_method_name_check``. All violations are ``InvalidArgument``.
    """
    try:
        if check_method_name:
            _check_method(signature, CLASSIFY_METHOD, "classification")
        _check_counts(signature, allowed_outputs=(1, 2))
        if CLASSIFY_INPUTS not in signature.inputs:
            raise InvalidArgument("No classification inputs found in SignatureDef:")
        output_keys = _classify_output_keys(signature)
        if not output_keys:
            raise InvalidArgument(
                "Expected classification signature outputs to contain at least one of "
                f'"{CLASSIFY_OUTPUT_CLASSES}" or "{CLASSIFY_OUTPUT_SCORES}". Signature was:'
            )
        _check_string_input(signature.inputs[CLASSIFY_INPUTS])
    except InvalidArgument as exc:
        raise _explained(exc, signature, "Classify", check_method_name) from None
    return CLASSIFY_INPUTS, output_keys


def check_regress_signature(
    signature: SignatureSpec, *, check_method_name: bool = False
) -> tuple[str, list[str]]:
    """Validate the regress contract; return (input key, ``["outputs"]``).

    ``check_method_name`` mirrors ``--enable_signature_method_name_check``. All violations
    are ``InvalidArgument``.
    """
    try:
        if check_method_name:
            _check_method(signature, REGRESS_METHOD, "regression")
        _check_counts(signature, allowed_outputs=(1,))
        if REGRESS_INPUTS not in signature.inputs:
            raise InvalidArgument("No regression inputs found in SignatureDef:")
        if REGRESS_OUTPUTS not in signature.outputs:
            raise InvalidArgument("No regression outputs found in SignatureDef:")
        _check_string_input(signature.inputs[REGRESS_INPUTS])
    except InvalidArgument as exc:
        raise _explained(exc, signature, "Regress", check_method_name) from None
    return REGRESS_INPUTS, [REGRESS_OUTPUTS]


def classification_result(
    outputs: Mapping[str, np.ndarray], num_examples: int, signature: SignatureSpec
) -> classification_pb2.ClassificationResult:
    """Build the result from fetched ``classes`` ``[batch, n]`` and/or ``scores`` ``[batch, n]``.

    Validates as ``PostProcessClassificationResult`` (``InvalidArgument``). Labels are
    empty when only scores exist, scores 0 when only classes exist; label bytes that are not
    UTF-8 are decoded with replacement characters (proto ``string`` fields require UTF-8).
    """
    keys = _classify_output_keys(signature)
    if any(key not in outputs for key in keys):
        raise InvalidArgument(f"Expected {len(keys)} output tensor(s).  Got: {len(outputs)}")
    classes = outputs.get(CLASSIFY_OUTPUT_CLASSES) if CLASSIFY_OUTPUT_CLASSES in keys else None
    scores = outputs.get(CLASSIFY_OUTPUT_SCORES) if CLASSIFY_OUTPUT_SCORES in keys else None
    if classes is not None:
        _check_classify_output(CLASSIFY_OUTPUT_CLASSES, classes, dtypes.DT_STRING, num_examples)
    if scores is not None:
        _check_classify_output(CLASSIFY_OUTPUT_SCORES, scores, dtypes.DT_FLOAT, num_examples)
    num_classes = _num_classes(classes, scores)
    labels = _labels(classes) if classes is not None else [[""] * num_classes] * num_examples
    values = scores.tolist() if scores is not None else [[0.0] * num_classes] * num_examples
    result = classification_pb2.ClassificationResult()
    for row_labels, row_scores in zip(labels, values, strict=True):
        row = result.classifications.add().classes
        for label, score in zip(row_labels, row_scores, strict=True):
            row.add(label=label, score=score)
    return result


def regression_result(
    outputs: Mapping[str, np.ndarray], num_examples: int, signature: SignatureSpec
) -> regression_pb2.RegressionResult:
    """Build the result from the fetched ``outputs`` DT_FLOAT ``[batch]`` or ``[batch, 1]``.

    Validates as ``PostProcessRegressionResult``: ``FailedPrecondition`` when the signature
    has no ``outputs``, ``InvalidArgument`` for a missing, misshaped or non-float tensor.
    """
    spec = signature.outputs.get(REGRESS_OUTPUTS)
    if spec is None:
        raise FailedPrecondition(
            f"No regression outputs found in SignatureDef: {describe_signature(signature)}"
        )
    array = outputs.get(REGRESS_OUTPUTS)
    if array is None:
        raise InvalidArgument(f"Could not find output tensor '{spec.tensor_name}'")
    if not (array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)):
        raise InvalidArgument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
            f"but got {format_shape(array.shape)}"
        )
    if array.shape[0] != num_examples:
        raise InvalidArgument(
            f"Input batch size did not match output batch size: {num_examples} vs. {array.shape[0]}"
        )
    actual = dtypes.from_numpy(array.dtype)
    if actual != dtypes.DT_FLOAT:
        raise InvalidArgument(f"Expected output Tensor of DT_FLOAT.  Got: {dtypes.name(actual)}")
    result = regression_pb2.RegressionResult()
    for value in array.ravel().tolist():
        result.regressions.add(value=value)
    return result


def describe_signature(signature: SignatureSpec) -> str:
    """One line instead of TF Serving's SignatureDef dump: key, method, inputs and outputs."""
    method = signature.method_name or "(no method_name)"
    return (
        f"signature '{signature.key}' ({method}) takes "
        f"{{{shapes.inputs_text(signature.inputs)}}} and returns "
        f"{{{shapes.inputs_text(signature.outputs)}}}."
    )


_NEEDS: Final = {
    "Classify": (
        f"Classify needs a signature with one DT_STRING input '{CLASSIFY_INPUTS}' "
        f"(serialized tf.Example) and outputs '{CLASSIFY_OUTPUT_CLASSES}' (DT_STRING) "
        f"and/or '{CLASSIFY_OUTPUT_SCORES}' (DT_FLOAT), method_name {CLASSIFY_METHOD}."
    ),
    "Regress": (
        f"Regress needs a signature with one DT_STRING input '{REGRESS_INPUTS}' "
        f"(serialized tf.Example) and one DT_FLOAT output '{REGRESS_OUTPUTS}', "
        f"method_name {REGRESS_METHOD}."
    ),
}


def fitting_signatures(
    signatures: Mapping[str, SignatureSpec], api: str, check_method_name: bool = False
) -> list[str]:
    """The keys of ``signatures`` that pass ``api``'s (``Classify``/``Regress``) contract."""
    check = check_classify_signature if api == "Classify" else check_regress_signature
    fits = []
    for key in sorted(signatures):
        if key.startswith("__"):
            continue
        try:
            check(signatures[key], check_method_name=check_method_name)
        except InvalidArgument:
            continue
        fits.append(key)
    return fits


def _explained(
    exc: InvalidArgument, signature: SignatureSpec, api: str, check_method_name: bool
) -> InvalidArgument:
    """TF Serving's message, then the signature in one line, the contract, what fits."""
    described = describe_signature(signature)
    if exc.message.endswith("."):
        described = described[0].upper() + described[1:]
    parts = [exc.message, described, _NEEDS[api]]
    if signature.model_signatures is not None:
        fits = fitting_signatures(signature.model_signatures, api, check_method_name)
        if fits:
            parts.append(
                f"Signatures of this model that fit {api}: {', '.join(fits)} "
                "(name one in signature_name)."
            )
        else:
            parts.append(f"No signature of this model fits {api}.")
    return InvalidArgument(" ".join(parts))


def signature_debug_string(signature: SignatureSpec) -> str:
    """The signature as a ``SignatureDef`` in text format (C++ ``DebugString``), for messages."""
    proto = meta_graph_pb2.SignatureDef(method_name=signature.method_name)
    for key, spec in signature.inputs.items():
        _tensor_info(proto.inputs[key], spec)
    for key, spec in signature.outputs.items():
        _tensor_info(proto.outputs[key], spec)
    text: str = text_format.MessageToString(proto)
    return text


# -- helpers ----------------------------------------------------------------------------------


def _check_method(signature: SignatureSpec, expected: str, kind: str) -> None:
    if signature.method_name != expected:
        raise InvalidArgument(
            f"Expected {kind} signature method_name to be {expected}. Was: {signature.method_name}"
        )


def _check_counts(signature: SignatureSpec, allowed_outputs: tuple[int, ...]) -> None:
    if len(signature.inputs) != 1:
        raise InvalidArgument("Expected one input Tensor.")
    if len(signature.outputs) not in allowed_outputs:
        if allowed_outputs == (1,):
            raise InvalidArgument("Expected one output Tensor.")
        raise InvalidArgument(f"Expected one or two output Tensors, found {len(signature.outputs)}")


def _check_string_input(spec: TensorSpec) -> None:
    """The examples are fed as DT_STRING; message as TensorFlow's call frame reports it."""
    if spec.dtype != dtypes.DT_STRING:
        raise InvalidArgument(
            f"Expects arg[0] to be {dtypes.short_name(spec.dtype)} but string is provided"
        )


def _classify_output_keys(signature: SignatureSpec) -> list[str]:
    keys = (CLASSIFY_OUTPUT_CLASSES, CLASSIFY_OUTPUT_SCORES)
    return [key for key in keys if key in signature.outputs]


def _check_classify_output(name: str, array: np.ndarray, dtype: int, num_examples: int) -> None:
    if array.ndim != 2:
        raise InvalidArgument(
            f"Expected Tensor shape: [batch_size num_classes] but got {format_shape(array.shape)}"
        )
    actual = dtypes.from_numpy(array.dtype)
    if actual != dtype:
        raise InvalidArgument(
            f"Expected {name} Tensor of {dtypes.name(dtype)}. Got: {dtypes.name(actual)}"
        )
    if array.shape[0] != num_examples:
        raise InvalidArgument(
            f"Expected {name} output batch size of {num_examples}. Got: {array.shape[0]}"
        )


def _num_classes(classes: np.ndarray | None, scores: np.ndarray | None) -> int:
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise InvalidArgument(
            "Tensors class and score should match in dim_size(1). "
            f"Got {classes.shape[1]} vs. {scores.shape[1]}"
        )
    present = classes if classes is not None else scores
    return 0 if present is None else int(present.shape[1])


def _labels(classes: np.ndarray) -> list[list[str]]:
    return [[_label(value) for value in row] for row in classes.tolist()]


def _label(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")


def _tensor_info(info: meta_graph_pb2.TensorInfo, spec: TensorSpec) -> None:
    info.name = spec.tensor_name
    info.dtype = spec.dtype
    if spec.shape is None:
        info.tensor_shape.unknown_rank = True
        return
    info.tensor_shape.SetInParent()
    for size in spec.shape:
        info.tensor_shape.dim.add(size=size)


def find_signature(servable: Servable, name: str) -> SignatureSpec:
    """The signature a Classify/Regress/MultiInference task names ("" = serving_default)."""
    key = name or DEFAULT_SIGNATURE
    signatures = servable.signatures
    spec = signatures.get(key)
    if spec is None:
        raise InvalidArgument(f"No signature was found with the name: {key}")
    # The copy knows its siblings, so a contract error can name the signatures that fit.
    return dataclasses.replace(spec, model_signatures=signatures)


@dataclass(frozen=True, slots=True)
class ExamplesApi:
    """Classify or Regress: the two APIs over serialized ``tf.Example`` inputs."""

    name: str  # gRPC method and runtime-latency label
    kind: str  # REST verb and request-log kind
    check: Callable[[SignatureSpec], tuple[str, list[str]]]
    result: Callable[[Mapping[str, np.ndarray], int, SignatureSpec], Any]


CLASSIFY: Final = ExamplesApi(
    "Classify", "classify", check_classify_signature, classification_result
)
REGRESS: Final = ExamplesApi("Regress", "regress", check_regress_signature, regression_result)


def api_for_method(method_name: str) -> ExamplesApi:
    """The API a MultiInference task's ``method_name`` asks for."""
    if method_name == CLASSIFY_METHOD:
        return CLASSIFY
    if method_name == REGRESS_METHOD:
        return REGRESS
    raise InvalidArgument(
        f"Unsupported signature method_name: {method_name!r}; expected "
        f"{CLASSIFY_METHOD!r} or {REGRESS_METHOD!r}"
    )
