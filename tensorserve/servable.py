"""The Servable contract: what the service layer computes with.

A Servable is one loaded model version. The runtime (``runtime/``) produces
them from SavedModels; ``batching/`` wraps one with the same interface. The
service layer only ever sees this Protocol, never TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One signature input or output.

    ``tensor_name`` is the graph name (``x:0``); ``dtype`` a ``dtypes`` code;
    ``shape`` is None for unknown rank, with -1 for each unknown dimension.
    """

    tensor_name: str
    dtype: int
    shape: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class SignatureSpec:
    """A SignatureDef reduced to what validation and execution need."""

    key: str
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]
    defaults: frozenset[str] = field(default_factory=frozenset)
    # Whether ``inputs[k].shape`` is enforced exactly (same rank, fixed dimensions): a TF2
    # function rejects other shapes; a TF1 session feeds a tensor as given (TF Serving's
    # behaviour, relied on by its own tests), so only one that cannot fill it is refused.
    enforces_shapes: bool = True
    # The model's other signatures, set by lookups whose errors name the ones that fit
    # (Classify/Regress, ``service/examples.find_signature``); None elsewhere.
    model_signatures: Mapping[str, SignatureSpec] | None = field(
        default=None, compare=False, repr=False
    )


class Servable(Protocol):
    """One loaded model version.

    Contract: ``run`` is thread-safe, may block for the computation's length
    and must be called off the event loop. Inputs are already validated
    against ``signatures[signature]`` (names, dtypes, shapes) by the caller;
    numeric inputs are C-contiguous numpy arrays of the signature's dtype,
    DT_STRING inputs are object arrays of ``bytes``. ``output_keys`` names
    the outputs to fetch (a non-empty subset of the signature's outputs).
    The result maps each requested key to a numpy array (object arrays of
    ``bytes`` for strings). Errors are raised as ``ServingError``.
    """

    @property
    def signatures(self) -> Mapping[str, SignatureSpec]:
        """Signature key -> spec; cheap, computed once at load."""
        ...

    @property
    def inline_ok(self) -> bool:
        """``run`` never waits for other requests, so a fast call may run on the event loop
        (``service/dispatch.py``); False for a batching wrapper."""
        ...

    @property
    def allowed_batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes ``run`` pads to (batching's ``allowed_batch_sizes``); () = any."""
        ...

    def signature_def_map(self) -> bytes:
        """Serialized ``tensorflow.serving.SignatureDefMap`` of all signatures."""
        ...

    def run(
        self,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Execute one signature; see the class docstring for the contract."""
        ...

    def schedule(
        self,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        timeout_s: float | None = None,
    ) -> Future[dict[str, np.ndarray]] | None:
        """Like ``run``, but queue the call and return a future without blocking a thread
        (batching); None when the servable has no queue for it (then call ``run``).
        Cancelling the future before the work starts drops the work."""
        ...

    def close(self) -> None:
        """Release resources; called once, after the last ``run`` finished."""
        ...
