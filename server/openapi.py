"""The Stats API described in OpenAPI 3.1, served at /api/openapi.json.

Written by hand beside the routes (server/stats_api.py) rather than generated: the API copies
Plausible's, so the parameters are a contract to state, not a by-product of the code.
tests/test_openapi.py holds the routes to it with schemathesis.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from .reports.filters import EVENT_DIMENSIONS, VISIT_DIMENSIONS
from .reports.metrics import METRICS
from .reports.query import PERIODS

PROPERTIES = [*VISIT_DIMENSIONS, *EVENT_DIMENSIONS, "event:goal"]
NUMBER = {"type": ["number", "null"]}
MONEY = {
    "type": "object",
    "properties": {"value": {"type": "number"}, "currency": {"type": "string"}},
    "required": ["value", "currency"],
}
VALUE = {"oneOf": [NUMBER, MONEY]}
ERROR = {
    "description": "What was wrong, in words",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}
ERRORS = {
    "400": ERROR | {"description": "A parameter Zeef cannot use; the message names it"},
    "401": ERROR | {"description": "No key, or a key that does not exist or was revoked"},
    "404": ERROR | {"description": "No such site, or one the key may not read"},
    "429": ERROR | {"description": "Over the key's hourly limit; see Retry-After"},
}


def _param(name: str, schema: dict[str, Any], text: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": text}  # fmt: skip


SITE = _param("site_id", {"type": "string", "minLength": 1}, "the site's domain", True)
PERIOD = _param(
    "period",
    {"type": "string", "enum": [*PERIODS], "default": "30d"},
    "which days, in the site's time zone; custom takes date=FIRST,LAST",
)
DATE = _param(
    "date",
    {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}(,\d{4}-\d{2}-\d{2})?$"},
    "the day a period ends on (or the month or year it falls in); FIRST,LAST for custom",
)
METRIC_LIST = _param(
    "metrics",
    {"type": "string", "default": "visitors", "pattern": "^[a-z_]+(,[a-z_]+)*$"},
    "comma-separated: " + ", ".join(METRICS) + " (docs/metrics.md)",
)
FILTERS = _param("filters", {"type": "string"}, "v1 syntax: visit:country==NL;event:page==/a|/b*")
COMPARE = _param(
    "compare",
    {"type": "string", "enum": ["previous_period", "year_over_year", "custom"]},
    "add comparison_value and change to each metric; custom takes compare_date=FIRST,LAST",
)
COMPARE_DATE = _param(
    "compare_date",
    {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2},\d{4}-\d{2}-\d{2}$"},
    "FIRST,LAST: the days compare=custom compares with (Zeef's extension of v1)",
)
INTERVAL = _param(
    "interval",
    {"type": "string", "enum": ["minute", "hour", "date", "day", "week", "month"]},
    "bucket size; the default suits the period as Plausible's does",
)


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "200": {"description": "The figures", "content": {"application/json": {"schema": schema}}},
        **ERRORS,
    }


def _results(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"results": items}, "required": ["results"]}


ROW = {"type": "object", "additionalProperties": {"oneOf": [VALUE, {"type": "string"}]}}


FILTER = {
    "type": "array",
    "description": '[op, dimension, [values]], or ["and"|"or", [filters]], or ["not", filter],'
    ' or ["has_done"|"has_not_done", filter on event dimensions]',
    "minItems": 2,
    "maxItems": 4,
}
V2_QUERY = {
    "type": "object",
    "required": ["site_id", "metrics", "date_range"],
    "properties": {
        "site_id": {"type": "string", "minLength": 1},
        "metrics": {"type": "array", "items": {"type": "string", "enum": [*METRICS]},
                    "minItems": 1},
        "date_range": {
            "oneOf": [
                {"type": "string", "enum": [p for p in PERIODS if p != "custom"]},
                {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
            ]
        },
        "date": {"type": "string", "format": "date"},
        "dimensions": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "filters": {"type": "array", "items": FILTER},
        "order_by": {"type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2}},
        "include": {"type": "object"},
        "pagination": {
            "type": "object",
            "properties": {"limit": {"type": "integer", "minimum": 1},
                           "offset": {"type": "integer", "minimum": 0}},
        },
    },
}  # fmt: skip
V2_ANSWER = {
    "type": "object",
    "required": ["results", "meta", "query"],
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["dimensions", "metrics"],
                "properties": {"dimensions": {"type": "array"}, "metrics": {"type": "array"}},
            },
        },
        "meta": {"type": "object"},
        "query": {"type": "object"},
    },
}


def document() -> dict[str, Any]:
    aggregate_value = {
        "type": "object",
        "properties": {"value": VALUE, "comparison_value": VALUE, "change": NUMBER},
        "required": ["value"],
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Zeef Stats API",
            "version": "2",
            "description": "Plausible's Stats API, v1 and v2, served by Zeef: the same paths, "
            "parameters and answers. Send `Authorization: Bearer KEY` (make one with "
            "`zeef apikey create`).",
        },
        "components": {
            "securitySchemes": {"key": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"key": []}],
        "paths": {
            "/api/v1/stats/realtime/visitors": {
                "get": {
                    "summary": "Visitors with a hit in the last 5 minutes",
                    "parameters": [SITE],
                    "responses": _ok({"type": "integer", "minimum": 0}),
                }
            },
            "/api/v1/stats/aggregate": {
                "get": {
                    "summary": "Metrics over a period",
                    "parameters": [SITE, PERIOD, DATE, METRIC_LIST, FILTERS, COMPARE, COMPARE_DATE],
                    "responses": _ok(
                        _results({"type": "object", "additionalProperties": aggregate_value})
                    ),
                }
            },
            "/api/v1/stats/timeseries": {
                "get": {
                    "summary": "Metrics per bucket of time, every bucket of the period",
                    "parameters": [SITE, PERIOD, DATE, METRIC_LIST, FILTERS, INTERVAL],
                    "responses": _ok(_results({"type": "array", "items": ROW})),
                }
            },
            "/api/v2/query": {
                "post": {
                    "summary": "Plausible's v2 query: metrics, dimensions, filters, order",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": V2_QUERY}},
                    },
                    "responses": _ok(V2_ANSWER),
                }
            },
            "/api/v1/stats/breakdown": {
                "get": {
                    "summary": "Metrics per value of a property, most visitors first",
                    "parameters": [
                        SITE,
                        PERIOD,
                        DATE,
                        METRIC_LIST,
                        FILTERS,
                        _param(
                            "property",
                            {"type": "string", "examples": PROPERTIES},
                            "a dimension: " + ", ".join(PROPERTIES) + ", event:props:NAME",
                            True,
                        ),
                        _param(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                            "rows a page",
                        ),
                        _param(
                            "page",
                            {"type": "integer", "minimum": 1, "default": 1},
                            "which page of rows",
                        ),
                    ],
                    "responses": _ok(_results({"type": "array", "items": ROW})),
                }
            },
        },
    }


async def serve(request: Request) -> JSONResponse:
    return JSONResponse(document())
