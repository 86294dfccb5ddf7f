"""The OpenAPI 3.1 description of every REST endpoint: the one source.

``document()`` builds it; the server answers it at ``/openapi.json`` (for its own
metrics path, and without ``/dashboard/`` when that is off), and ``docs/openapi.json``
is ``python -m tensorserve.protocols.rest.openapi`` (the defaults), which a test
compares with this module, so neither can drift.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tensorserve import __version__

DEFAULT_METRICS_PATH = "/monitoring/prometheus/metrics"
JSON_TYPE = "application/json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON_TYPE: {"schema": schema}}}


def _error(description: str) -> Schema:
    return json_content(ref("Error"), description)


_ERRORS: dict[str, Schema] = {
    "400": _error("Malformed request (bad URL, JSON, tensor or signature); says what was expected"),
    "401": _error("Missing or invalid bearer token (only with --auth_token_file)"),
    "404": _error("Unknown model, version, label or signature"),
    "408": _error("Headers not complete within --rest_api_header_timeout_seconds"),
    "429": _error("More open connections than --rest_api_max_connections"),
    "431": _error("Request line and headers larger than --rest_api_max_header_bytes"),
}
_POST_ERRORS: dict[str, Schema] = {
    **_ERRORS,
    "408": _error(
        "Headers or body not complete within --rest_api_header_timeout_seconds / "
        "--rest_api_body_timeout_seconds"
    ),
    "413": _error("Request body larger than --rest_api_max_body_bytes (after gzip)"),
    "429": _error(
        "Input tensors above --max_request_tensor_elements, more connections than "
        "--rest_api_max_connections, or no room in --rest_api_max_buffered_body_bytes in time"
    ),
    "503": _error("The model is not available yet, or the server is shutting down"),
    "504": _error("The computation took longer than --rest_api_timeout_in_ms"),
}
_TEXT: Schema = {"type": "string"}
_MODEL = {
    "name": "model_name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[^/:]+$"},
}
_VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
}
_LABEL = {
    "name": "label",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[^/:]+$"},
}
_TARGETS = (
    ("", [_MODEL], ""),
    ("/versions/{version}", [_MODEL, _VERSION], " at a version"),
    ("/labels/{label}", [_MODEL, _LABEL], " at a version label"),
)


def _schemas() -> dict[str, Schema]:
    status_entry = {
        "type": "object",
        "required": ["version", "state", "status"],
        "properties": {
            "version": {"type": "string", "pattern": "^[0-9]+$"},
            "state": {"enum": ["UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END"]},
            "status": {
                "type": "object",
                "properties": {
                    "error_code": {"type": "string"},
                    "error_message": {"type": "string"},
                },
            },
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "ModelStatus": {
            "type": "object",
            "required": ["model_version_status"],
            "properties": {"model_version_status": {"type": "array", "items": status_entry}},
        },
        "ModelList": {
            "type": "object",
            "required": ["models"],
            "properties": {
                "models": {
                    "type": "array",
                    "items": {
                        "allOf": [ref("ModelStatus")],
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}},
                    },
                }
            },
        },
        "ModelMetadata": {
            "type": "object",
            "required": ["model_spec", "metadata"],
            "properties": {
                "model_spec": {"type": "object"},
                "metadata": {
                    "type": "object",
                    "required": ["signature_def"],
                    "properties": {"signature_def": {"type": "object"}},
                },
            },
        },
        "PredictRequest": {
            "description": (
                "Row format (instances) or columnar format (inputs), as TF Serving; the "
                "values must fit the signature's inputs (GET .../metadata)"
            ),
            "type": "object",
            "properties": {
                "signature_name": {"type": "string"},
                "instances": {"type": "array"},
                "inputs": {},
            },
            "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
        },
        "Feature": {
            "description": "A tf.Example feature: numbers (float or int64), strings or b64",
            "anyOf": [
                {"type": "number"},
                {"type": "string"},
                ref("B64"),
                {"type": "array", "minItems": 1, "items": {"type": "number"}},
                {"type": "array", "minItems": 1, "items": {"type": "string"}},
                {"type": "array", "minItems": 1, "items": ref("B64")},
            ],
        },
        "B64": {
            "type": "object",
            "required": ["b64"],
            "properties": {"b64": {"type": "string", "contentEncoding": "base64"}},
            "additionalProperties": False,
        },
        "PredictResponse": {
            "type": "object",
            "properties": {"predictions": {}, "outputs": {}},
            "minProperties": 1,
            "maxProperties": 1,
        },
        "ExamplesRequest": {
            "type": "object",
            "required": ["examples"],
            "properties": {
                "signature_name": {"type": "string"},
                "context": {"type": "object", "additionalProperties": ref("Feature")},
                "examples": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "object", "additionalProperties": ref("Feature")},
                },
            },
        },
        "ClassifyResponse": {
            "type": "object",
            "required": ["result"],
            "properties": {
                "result": {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "array",
                            "prefixItems": [{"type": "string"}, {"type": "number"}],
                            "minItems": 2,
                            "maxItems": 2,
                        },
                    },
                }
            },
        },
        "RegressResponse": {
            "type": "object",
            "required": ["result"],
            "properties": {"result": {"type": "array", "items": {"type": "number"}}},
        },
    }


def _model_paths() -> dict[str, Schema]:
    paths: dict[str, Schema] = {}
    for suffix, params, where in _TARGETS:
        base = "/v1/models/{model_name}" + suffix
        paths[base] = _get(
            f"Version status of a model{where} (GetModelStatus)", params, "ModelStatus"
        )
        paths[base + "/metadata"] = _get(
            f"Signatures of a model{where} (GetModelMetadata)", params, "ModelMetadata"
        )
        for verb, body, reply in (
            ("predict", "PredictRequest", "PredictResponse"),
            ("classify", "ExamplesRequest", "ClassifyResponse"),
            ("regress", "ExamplesRequest", "RegressResponse"),
        ):
            paths[f"{base}:{verb}"] = _post(
                f"{verb.capitalize()} with a model{where}", params, body, reply
            )
    return paths


def _get(summary: str, params: list[Schema], reply: str) -> Schema:
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {"200": json_content(ref(reply), "OK"), **_ERRORS},
        }
    }


def _post(summary: str, params: list[Schema], body: str, reply: str) -> Schema:
    return {
        "post": {
            "summary": summary,
            "parameters": params,
            "requestBody": {"required": True, "content": {JSON_TYPE: {"schema": ref(body)}}},
            "responses": {"200": json_content(ref(reply), "OK"), **_POST_ERRORS},
        }
    }


def _simple(summary: str, schema: Schema, extra: dict[str, Schema] | None = None) -> Schema:
    responses = {"200": json_content(schema, "OK"), **(extra or {})}
    return {"get": {"summary": summary, "responses": responses, "security": []}}


def _server_paths(metrics_path: str | None, dashboard: bool) -> dict[str, Schema]:
    ready = {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}}
    model_ready = {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    }
    not_ready = {"503": json_content(ready, "Not every configured model is available")}
    paths: dict[str, Schema] = {
        "/v1/models": _get("Every configured model with its version status", [], "ModelList"),
        "/v2/health/live": _simple(
            "Liveness (Open Inference Protocol)",
            {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
        ),
        "/v2/health/ready": _simple("Readiness: every model available", ready, not_ready),
    }
    for suffix, params in (("", [_MODEL]), ("/versions/{version}", [_MODEL, _VERSION])):
        path = "/v2/models/{model_name}" + suffix + "/ready"
        op = _simple(
            "Model readiness (Open Inference Protocol)",
            model_ready,
            {
                "404": _error("Model not configured"),
                "503": json_content(model_ready, "Not available"),
            },
        )
        op["get"]["parameters"] = params
        paths[path] = op
    paths["/openapi.json"] = _simple("This document", {"type": "object"})
    if metrics_path is not None:
        paths[metrics_path] = {
            "get": {
                "summary": "Prometheus metrics (TF Serving's names), with --monitoring_config_file",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _ERRORS["401"],
                },
            }
        }
    if dashboard:
        paths.update(_dashboard_paths())
    return paths


def _dashboard_paths() -> dict[str, Schema]:
    html = {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}
    overview = {
        "type": "object",
        "required": ["server", "models", "metrics"],
        "properties": {
            "server": {"type": "object"},
            "models": {"type": "array", "items": {"type": "object"}},
            "metrics": {"type": "object"},
        },
    }
    return {
        "/dashboard/": {
            "get": {
                "summary": "Operator dashboard (off with --enable_dashboard=false)",
                "parameters": [
                    {
                        "name": "token",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "The bearer token; stored in a cookie, then redirected",
                    }
                ],
                "responses": {
                    "200": html,
                    "303": {"description": "Token accepted: cookie set, redirect to the page"},
                    "401": _ERRORS["401"],
                },
            }
        },
        "/dashboard/api/overview": {
            "get": {
                "summary": "What the dashboard shows: server, models and cumulative counters",
                "responses": {"200": json_content(overview, "OK"), "401": _ERRORS["401"]},
            }
        },
    }


def document(metrics_path: str | None = DEFAULT_METRICS_PATH, dashboard: bool = True) -> Schema:
    """The whole document for a server with this metrics path (None: off) and dashboard."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tensorserve REST API",
            "version": __version__,
            "description": (
                "TensorFlow Serving's REST API (g3doc/api_rest.md), the Open Inference "
                "Protocol under /v2 (docs/oip.md), and tensorserve's "
                'additions. Errors are always {"error": "..."}. With --auth_token_file '
                "every operation except health checks needs the bearer token."
            ),
        },
        "paths": {
            **_model_paths(),
            **_server_paths(metrics_path, dashboard),
            **_oip().paths(),
        },
        "components": {
            "schemas": {**_schemas(), **_oip().schemas()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }


def _oip() -> Any:
    from tensorserve.protocols.rest import openapi_oip  # it builds on this module's helpers

    return openapi_oip


def dumps(doc: Schema) -> str:
    """The committed file's exact text."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(dumps(document()))
