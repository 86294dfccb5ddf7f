"""SignatureDef protos -> :class:`SignatureSpec`, and the metadata map."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from tensorserve import dtypes
from tensorserve.servable import SignatureSpec, TensorSpec


def tensor_spec(info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    """One ``TensorInfo``; composite (sparse/ragged) tensors keep an empty tensor name.

    Reference dtypes (``DT_FLOAT_REF``, TF1 variables fetched directly, e.g. TF
    Serving's ``saved_model_counter``) become their base dtype: a session fetch
    returns the value, and TF Serving answers it as ``DT_FLOAT``. Metadata keeps
    the original dtype (it is built from the SignatureDef protos).
    """
    shape: tuple[int, ...] | None
    if not info.HasField("tensor_shape") or info.tensor_shape.unknown_rank:
        shape = None  # an absent shape (old TF1 signatures) means "unknown", not scalar
    else:
        shape = tuple(int(d.size) for d in info.tensor_shape.dim)
    return TensorSpec(tensor_name=info.name, dtype=dtypes.base(int(info.dtype)), shape=shape)


def signature_spec(
    key: str, sig: meta_graph_pb2.SignatureDef, enforces_shapes: bool = True
) -> SignatureSpec:
    """A ``SignatureDef`` reduced to what validation and execution need."""
    return SignatureSpec(
        key=key,
        method_name=sig.method_name,
        inputs=MappingProxyType({k: tensor_spec(v) for k, v in sig.inputs.items()}),
        outputs=MappingProxyType({k: tensor_spec(v) for k, v in sig.outputs.items()}),
        defaults=frozenset(sig.defaults.keys()),
        enforces_shapes=enforces_shapes,
    )


def signature_specs(
    sigs: Mapping[str, meta_graph_pb2.SignatureDef], enforces_shapes: bool = True
) -> Mapping[str, SignatureSpec]:
    """Every signature of a MetaGraphDef, keyed as in the SavedModel."""
    return MappingProxyType({k: signature_spec(k, v, enforces_shapes) for k, v in sigs.items()})


def signature_def_map_bytes(sigs: Mapping[str, meta_graph_pb2.SignatureDef]) -> bytes:
    """Serialized ``tensorflow.serving.SignatureDefMap`` as GetModelMetadata returns it.

    Like TF Serving 2.20+, ``defaults`` contents are not returned.
    """
    out = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in sigs.items():
        copy = out.signature_def[key]
        copy.CopyFrom(sig)
        copy.ClearField("defaults")
    data: bytes = out.SerializeToString(deterministic=True)
    return data
