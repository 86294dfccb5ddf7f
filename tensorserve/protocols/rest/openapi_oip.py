"""The Open Inference Protocol's part of the OpenAPI document (``/v2``, see docs/oip.md).

Only the JSON form of ``infer`` is described as a schema: the binary extension
(``Inference-Header-Content-Length``) is an octet stream of a JSON header and raw tensors.
"""

from __future__ import annotations

from tensorserve.protocols.rest.openapi import JSON_TYPE, Schema, json_content, ref

DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BF16", "BYTES"]  # fmt: skip
_MODEL = {
    "name": "model_name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[^/]+$"},
}
_VERSION = {
    "name": "model_version",
    "in": "path",
    "required": True,
    "description": "A version number, or a TF Serving version label",
    "schema": {"type": "string", "pattern": "^[^/]+$"},
}
_TARGETS = (("", [_MODEL]), ("/versions/{model_version}", [_MODEL, _VERSION]))


def _errors(*codes: str) -> dict[str, Schema]:
    text = {
        "400": "Malformed request; says what was wrong and what was expected",
        "401": "Missing or invalid bearer token (only with --auth_token_file)",
        "404": "Unknown model, version or label",
        "409": "The server's configuration refuses this change (says which flag or file)",
        "413": "Request body larger than --rest_api_max_body_bytes (after gzip)",
        "503": "The model is not available yet, or the server is shutting down",
        "504": "The computation took longer than --rest_api_timeout_in_ms",
    }
    return {code: json_content(ref("Error"), text[code]) for code in codes}


def paths() -> dict[str, Schema]:
    out: dict[str, Schema] = {
        "/v2": {"get": {"summary": "Server metadata (OIP)", "responses": {
            "200": json_content(ref("OipServerMetadata"), "OK"), **_errors("401")}}},
        "/v2/models/stats": {"get": {"summary": "Inference statistics of every model",
            "responses": {"200": json_content(ref("OipStatistics"), "OK"), **_errors("401")}}},
        "/v2/repository/index": {"post": {
            "summary": "Every model the repository knows, with its state",
            "requestBody": {"required": False, "content": {JSON_TYPE: {"schema": {
                "type": "object", "properties": {"ready": {"type": "boolean"}}}}}},
            "responses": {
                "200": json_content({"type": "array", "items": ref("OipIndexEntry")}, "OK"),
                **_errors("400", "401")}}},
    }  # fmt: skip
    for verb in ("load", "unload"):
        out[f"/v2/repository/models/{{model_name}}/{verb}"] = {
            "post": {
                "summary": f"Model {verb} (with --enable_model_management=true)",
                "parameters": [_MODEL],
                "requestBody": {"required": False, "content": {JSON_TYPE: {"schema": {
                    "type": "object", "properties": {"parameters": {"type": "object"}}}}}},
                "responses": {"200": {"description": "Done"},
                              **_errors("400", "401", "404", "409")},
            }
        }  # fmt: skip
    for suffix, params in _TARGETS:
        base = "/v2/models/{model_name}" + suffix
        out[base] = {
            "get": {
                "summary": "Model metadata (OIP)",
                "parameters": [
                    *params,
                    {
                        "name": "signature_name",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": json_content(ref("OipModelMetadata"), "OK"),
                    **_errors("400", "401", "404"),
                },
            }
        }
        out[base + "/infer"] = {
            "post": {
                "summary": "Inference (OIP; JSON, or Triton's binary tensor extension)",
                "parameters": params,
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON_TYPE: {"schema": ref("OipInferRequest")},
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            JSON_TYPE: {"schema": ref("OipInferResponse")},
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    **_errors("400", "401", "404", "413", "503", "504"),
                },
            }
        }
        out[base + "/stats"] = {"get": {"summary": "Inference statistics", "parameters": params,
            "responses": {"200": json_content(ref("OipStatistics"), "OK"),
                          **_errors("400", "401", "404")}}}  # fmt: skip
    return out


def schemas() -> dict[str, Schema]:
    tensor_meta = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}}}}  # fmt: skip
    parameters = {"type": "object"}
    tensor_in = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
        "name": {"type": "string"}, "datatype": {"enum": DATATYPES},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "parameters": parameters, "data": {}}}  # fmt: skip
    tensor_out = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "parameters": parameters, "data": {"type": "array"}}}  # fmt: skip
    duration = {"type": "object", "properties": {
        "count": {"type": "integer"}, "ns": {"type": "integer"}}}  # fmt: skip
    return {
        "OipServerMetadata": {"type": "object", "required": ["name", "version", "extensions"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                           "extensions": {"type": "array", "items": {"type": "string"}}}},
        "OipModelMetadata": {"type": "object",
            "required": ["name", "versions", "platform", "inputs", "outputs"],
            "properties": {"name": {"type": "string"},
                           "versions": {"type": "array", "items": {"type": "string"}},
                           "platform": {"type": "string"}, "parameters": parameters,
                           "inputs": {"type": "array", "items": tensor_meta},
                           "outputs": {"type": "array", "items": tensor_meta}}},
        "OipInferRequest": {"type": "object", "required": ["inputs"], "properties": {
            "id": {"type": "string"}, "parameters": parameters,
            "inputs": {"type": "array", "items": tensor_in, "minItems": 1},
            "outputs": {"type": "array", "items": {"type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": parameters}}}}},
        "OipInferResponse": {"type": "object", "required": ["model_name", "outputs"],
            "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                           "id": {"type": "string"}, "parameters": parameters,
                           "outputs": {"type": "array", "items": tensor_out}}},
        "OipStatistics": {"type": "object", "required": ["model_stats"], "properties": {
            "model_stats": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "version": {"type": "string"},
                "inference_count": {"type": "integer"}, "execution_count": {"type": "integer"},
                "last_inference": {"type": "integer"},
                "inference_stats": {"type": "object", "additionalProperties": duration},
                "batch_stats": {"type": "array"}}}}}},
        "OipIndexEntry": {"type": "object", "required": ["name", "state"], "properties": {
            "name": {"type": "string"}, "version": {"type": "string"},
            "state": {"enum": ["READY", "LOADING", "UNLOADING", "UNAVAILABLE"]},
            "reason": {"type": "string"}}},
    }  # fmt: skip
