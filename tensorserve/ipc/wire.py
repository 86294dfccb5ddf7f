"""Frames on the worker <-> model-process Unix socket.

A frame is a 13-byte header ``(body_len, request_id, kind, meta_len)``, then
``meta`` (a pickle of plain values), then the raw bytes of every numeric array
the message carries, each at an 8-byte-aligned offset of the body. Arrays cross
without per-element work: the sender hands their buffers to the transport as they
are (``writelines``), the receiver wraps slices of the received body with
``np.frombuffer`` (no copy). String tensors (object arrays of ``bytes``) travel
inside ``meta`` as lists.

Both ends are our own processes on a private socket (a 0700 folder of the
server's user), so pickle is safe here; nothing from the network is unpickled.
"""

from __future__ import annotations

import copyreg
import math
import pickle
import struct
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import numpy as np

HEADER: Final = struct.Struct("<IIBI")
CALL: Final = 1
REPLY: Final = 2
ERROR: Final = 3
EVENT: Final = 4
_ALIGN: Final = 8
_PAD: Final = bytes(_ALIGN)
_SMALL: Final = 256 << 10  # frames up to this size are parsed out of the shared read buffer
ArrayDesc = tuple[str, str, tuple[int, ...], Any]  # name, dtype (or "O"), shape, strings|None
Piece = bytes | memoryview
FrameHandler = Callable[[int, int, Any, Any, int], None]  # id, kind, meta, body, arrays offset


def enable_pickling() -> None:
    """Let read-only mappings (``MappingProxyType`` in frozen config and signature objects)
    pickle as the same read-only mappings. Idempotent; call before the first pickle."""
    copyreg.pickle(MappingProxyType, _reduce_mapping)


def _reduce_mapping(value: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return frozen_mapping, (dict(value),)


def frozen_mapping(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """A read-only view of ``items`` (the unpickling side of :func:`enable_pickling`)."""
    return MappingProxyType(items)


def pack_arrays(arrays: Mapping[str, np.ndarray]) -> tuple[list[ArrayDesc], list[memoryview]]:
    """Descriptors (for ``meta``) and the raw buffers of ``arrays``."""
    descs: list[ArrayDesc] = []
    buffers: list[memoryview] = []
    for name, value in arrays.items():
        if value.dtype.kind == "O":
            descs.append((name, "O", value.shape, value.ravel().tolist()))
            continue
        if not value.flags.c_contiguous:
            value = np.ascontiguousarray(value)
        descs.append((name, _dtype_tag(value.dtype), value.shape, None))
        buffers.append(value.reshape(-1).view(np.uint8).data)
    return descs, buffers


def _dtype_tag(dtype: np.dtype[Any]) -> str:
    """``dtype.str``, except for ml_dtypes' types (bfloat16), whose ``str`` is a bare
    ``<V2`` that would arrive as raw void: they travel by name."""
    return dtype.name if dtype.kind == "V" else dtype.str


def _dtype_of(tag: str) -> np.dtype[Any]:
    if tag[0] in "<>|=":
        return np.dtype(tag)
    import ml_dtypes

    found: np.dtype[Any] = np.dtype(getattr(ml_dtypes, tag))
    return found


def unpack_arrays(descs: list[ArrayDesc], body: Any, offset: int) -> dict[str, np.ndarray]:
    """The arrays of ``descs``, viewing ``body`` from ``offset`` (segments in order)."""
    out: dict[str, np.ndarray] = {}
    for name, dtype_str, shape, strings in descs:
        if dtype_str == "O":
            arr = np.empty(len(strings), dtype=object)
            arr[:] = strings
            out[name] = arr.reshape(shape)
            continue
        dtype = _dtype_of(dtype_str)
        count = math.prod(shape)
        out[name] = np.frombuffer(body, dtype, count, offset).reshape(shape)
        offset = _aligned(offset + count * dtype.itemsize)
    return out


def encode(
    request_id: int, kind: int, meta: Any, buffers: list[memoryview] | None = None
) -> list[Piece]:
    """The pieces of one frame, for ``transport.writelines``."""
    head = pickle.dumps(meta, protocol=pickle.HIGHEST_PROTOCOL)
    pieces: list[Piece] = []
    buffers = buffers or []
    size = _aligned(len(head)) if buffers else len(head)
    for buf in buffers:
        pieces.append(buf)
        pad = _aligned(buf.nbytes) - buf.nbytes
        if pad:
            pieces.append(_PAD[:pad])
        size += buf.nbytes + pad
    first = HEADER.pack(size, request_id, kind, len(head)) + head
    if buffers:
        first += _PAD[: _aligned(len(head)) - len(head)]
    return [first, *pieces]


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) & ~(_ALIGN - 1)


class FrameReader:
    """Reassembles frames from a byte stream (the receive side of an ``asyncio.BufferedProtocol``).

    Small frames are parsed out of one reusable buffer (their body is copied
    into its own ``bytes``); a large frame's body is received directly into a
    ``bytearray`` of its own, which the arrays decoded from it then keep alive.
    """

    def __init__(self, on_frame: FrameHandler) -> None:
        self._on_frame = on_frame
        self._buf = bytearray(_SMALL)
        self._start = 0
        self._end = 0
        self._big: bytearray | None = None
        self._big_header: tuple[int, int, int] = (0, 0, 0)
        self._big_filled = 0

    def get_buffer(self, _sizehint: int) -> memoryview:
        if self._big is not None:
            return memoryview(self._big)[self._big_filled :]
        if self._end == len(self._buf):
            self._compact()
        return memoryview(self._buf)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._big is not None:
            self._big_filled += nbytes
            if self._big_filled == len(self._big):
                body, (rid, kind, meta_len) = self._big, self._big_header
                self._big = None
                self._deliver(rid, kind, meta_len, body)
            return
        self._end += nbytes
        self._parse()

    def _parse(self) -> None:
        buf = self._buf
        while self._end - self._start >= HEADER.size:
            body_len, rid, kind, meta_len = HEADER.unpack_from(buf, self._start)
            begin = self._start + HEADER.size
            if HEADER.size + body_len > len(buf):
                self._start_big(body_len, rid, kind, meta_len, begin)
                return
            if self._end - begin < body_len:
                break
            body = bytes(buf[begin : begin + body_len])
            self._start = begin + body_len
            self._deliver(rid, kind, meta_len, body)
        if self._start == self._end:
            self._start = self._end = 0

    def _start_big(self, body_len: int, rid: int, kind: int, meta_len: int, begin: int) -> None:
        self._big = bytearray(body_len)
        have = self._end - begin
        self._big[:have] = self._buf[begin : self._end]
        self._big_header = (rid, kind, meta_len)
        self._big_filled = have
        self._start = self._end = 0

    def _compact(self) -> None:
        """Move the unparsed tail to the front of the buffer (a partial small frame)."""
        tail = self._buf[self._start : self._end]
        self._buf[: len(tail)] = tail
        self._start, self._end = 0, len(tail)

    def _deliver(self, rid: int, kind: int, meta_len: int, body: Any) -> None:
        meta = pickle.loads(memoryview(body)[:meta_len])
        self._on_frame(rid, kind, meta, body, _aligned(meta_len))
