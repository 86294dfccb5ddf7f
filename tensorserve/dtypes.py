"""TensorFlow ``DataType`` codes and their numpy equivalents, without importing TensorFlow.

Numbers equal ``tensorflow/core/framework/types.proto``. ``DT_STRING`` maps to
numpy ``object`` arrays holding ``bytes``; ``DT_BFLOAT16`` maps to ``ml_dtypes.bfloat16``
(the type TensorFlow itself uses for bfloat16 numpy arrays).
"""

from __future__ import annotations

from typing import Final

import ml_dtypes
import numpy as np

DT_INVALID: Final = 0
DT_FLOAT: Final = 1
DT_DOUBLE: Final = 2
DT_INT32: Final = 3
DT_UINT8: Final = 4
DT_INT16: Final = 5
DT_INT8: Final = 6
DT_STRING: Final = 7
DT_COMPLEX64: Final = 8
DT_INT64: Final = 9
DT_BOOL: Final = 10
DT_QINT8: Final = 11
DT_QUINT8: Final = 12
DT_QINT32: Final = 13
DT_BFLOAT16: Final = 14
DT_QINT16: Final = 15
DT_QUINT16: Final = 16
DT_UINT16: Final = 17
DT_COMPLEX128: Final = 18
DT_HALF: Final = 19
DT_RESOURCE: Final = 20
DT_VARIANT: Final = 21
DT_UINT32: Final = 22
DT_UINT64: Final = 23

NAMES: Final[dict[int, str]] = {
    DT_INVALID: "DT_INVALID",
    DT_FLOAT: "DT_FLOAT",
    DT_DOUBLE: "DT_DOUBLE",
    DT_INT32: "DT_INT32",
    DT_UINT8: "DT_UINT8",
    DT_INT16: "DT_INT16",
    DT_INT8: "DT_INT8",
    DT_STRING: "DT_STRING",
    DT_COMPLEX64: "DT_COMPLEX64",
    DT_INT64: "DT_INT64",
    DT_BOOL: "DT_BOOL",
    DT_QINT8: "DT_QINT8",
    DT_QUINT8: "DT_QUINT8",
    DT_QINT32: "DT_QINT32",
    DT_BFLOAT16: "DT_BFLOAT16",
    DT_QINT16: "DT_QINT16",
    DT_QUINT16: "DT_QUINT16",
    DT_UINT16: "DT_UINT16",
    DT_COMPLEX128: "DT_COMPLEX128",
    DT_HALF: "DT_HALF",
    DT_RESOURCE: "DT_RESOURCE",
    DT_VARIANT: "DT_VARIANT",
    DT_UINT32: "DT_UINT32",
    DT_UINT64: "DT_UINT64",
}

# Reference dtypes (``DT_FLOAT_REF`` = 101, ...) are the base code + 100.
REF_OFFSET: Final = 100

NUMPY: Final[dict[int, np.dtype[np.generic]]] = {
    DT_FLOAT: np.dtype(np.float32),
    DT_DOUBLE: np.dtype(np.float64),
    DT_INT32: np.dtype(np.int32),
    DT_UINT8: np.dtype(np.uint8),
    DT_INT16: np.dtype(np.int16),
    DT_INT8: np.dtype(np.int8),
    DT_STRING: np.dtype(object),
    DT_COMPLEX64: np.dtype(np.complex64),
    DT_INT64: np.dtype(np.int64),
    DT_BOOL: np.dtype(np.bool_),
    DT_UINT16: np.dtype(np.uint16),
    DT_COMPLEX128: np.dtype(np.complex128),
    DT_HALF: np.dtype(np.float16),
    DT_BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    DT_UINT32: np.dtype(np.uint32),
    DT_UINT64: np.dtype(np.uint64),
}


def base(dtype: int) -> int:
    """Strip the reference flag: ``DT_FLOAT_REF`` (101) -> ``DT_FLOAT`` (1)."""
    return dtype - REF_OFFSET if dtype > REF_OFFSET else dtype


def name(dtype: int) -> str:
    """``DT_FLOAT`` style name of a code; unknown codes print as their number."""
    return NAMES.get(base(dtype), f"DT_{dtype}")


def short_name(dtype: int) -> str:
    """TensorFlow's lowercase name used in messages: ``DT_FLOAT`` -> ``float``."""
    return name(dtype).removeprefix("DT_").lower()


def to_numpy(dtype: int) -> np.dtype[np.generic] | None:
    """numpy dtype for a code, or None when numpy has no equivalent (e.g. qint8, resource)."""
    return NUMPY.get(base(dtype))


def from_numpy(dtype: np.dtype[np.generic]) -> int:
    """Code for a numpy dtype; bytes/str/object arrays are ``DT_STRING``."""
    if dtype.kind in "OSU":
        return DT_STRING
    for code, np_dtype in NUMPY.items():
        if np_dtype == dtype:
            return code
    return DT_INVALID
