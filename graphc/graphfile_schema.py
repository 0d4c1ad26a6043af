"""The JSON Schema (draft 2020-12) of graphc graph files; graphc.graphfile explains the format.

It is a Python dict rather than a .json file so that it ships inside the
package with no package-data configuration.
"""
from graphc.ops.leaf import DTYPES

NAME = r"^[A-Za-z_][A-Za-z0-9_.]*$"
NODE_ID = {"type": "integer", "minimum": 0}


def _tagged(tag, body):
    return {"type": "object", "properties": {tag: body}, "required": [tag], "additionalProperties": False}


ARRAY_BODY = {
    "type": "object",
    "properties": {
        "dtype": {"enum": list(DTYPES)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 32},
        "data": {"type": "array", "items": {"type": ["number", "boolean", "string"]}},
    },
    "required": ["dtype", "shape", "data"], "additionalProperties": False,
}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "graphc graph file",
    "type": "object",
    "required": ["format", "version", "directed", "multigraph", "graph", "nodes", "edges"],
    "properties": {
        "format": {"const": "graphc-graph"},
        "version": {"const": 1},
        "directed": {"const": True},
        "multigraph": {"const": True},
        "graph": {
            "type": "object",
            "required": ["name", "outputs", "grads", "edge_grads"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "maxLength": 200},
                "outputs": {"type": "object", "additionalProperties": NODE_ID, "minProperties": 1},
                "grads": {"type": "object", "additionalProperties": NODE_ID},
                "edge_grads": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["src", "dst", "pos", "upstream", "local", "downstream"],
                    "properties": {"src": NODE_ID, "dst": NODE_ID, "pos": {"type": "integer", "minimum": 0},
                                   "upstream": NODE_ID, "downstream": NODE_ID,
                                   "local": {"anyOf": [NODE_ID, {"type": "null"}]}}}},
                "updates": {"type": "object", "propertyNames": {"pattern": "^[0-9]+$"},
                            "additionalProperties": NODE_ID},
            },
        },
        "nodes": {"type": "array", "items": {"$ref": "#/$defs/node"}},
        "edges": {"type": "array", "items": {
            "type": "object", "required": ["source", "target", "pos"], "additionalProperties": False,
            "properties": {"source": NODE_ID, "target": NODE_ID, "key": {"type": "integer", "minimum": 0},
                           "pos": {"type": "integer", "minimum": 0, "maximum": 64}}}},
    },
    "$defs": {
        "node": {
            "type": "object", "additionalProperties": False,
            "required": ["id", "op", "attrs", "shape", "dtype", "name", "phase"],
            "properties": {
                "id": NODE_ID,
                "op": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 100},
                "attrs": {"type": "object", "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                          "additionalProperties": {"$ref": "#/$defs/value"}},
                "shape": {"type": "array", "maxItems": 32, "items": {"anyOf": [
                    {"type": "integer", "minimum": 0}, {"type": "string", "pattern": NAME}]}},
                "dtype": {"enum": list(DTYPES)},
                "name": {"type": "string", "pattern": NAME, "maxLength": 200},
                "phase": {"enum": ["forward", "backward"]},
            },
        },
        "value": {"anyOf": [
            {"type": ["null", "boolean", "number", "string"]},
            {"type": "array", "items": {"$ref": "#/$defs/value"}},
            _tagged("tuple", {"type": "array", "items": {"$ref": "#/$defs/value"}}),
            _tagged("dict", {"type": "object", "additionalProperties": {"$ref": "#/$defs/value"}}),
            _tagged("float", {"enum": ["nan", "inf", "-inf"]}),
            _tagged("scalar", {"type": "object", "required": ["dtype", "value"], "additionalProperties": False,
                               "properties": {"dtype": {"enum": list(DTYPES)},
                                              "value": {"type": ["number", "boolean", "string"]}}}),
            _tagged("array", ARRAY_BODY),
        ]},
    },
}
