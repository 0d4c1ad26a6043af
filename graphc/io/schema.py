"""The JSON Schema (draft 2020-12) of graphc graph files; graphc.io.graphfile explains the format.

It is a Python dict rather than a .json file so that it ships inside the
package with no package-data configuration.
"""
from graphc.ir.ops.attrs import DTYPES, MAX_DIM, MAX_RANK

# Every name is an identifier of at most 200 characters (a graph name may also hold
# '-' and spaces): no quotes, brackets, backslashes, NUL or other control characters.  `(?![\s\S])` ends the
# string for real (`$` would let a trailing newline through).
NAME = r"^[A-Za-z_][A-Za-z0-9_.]{0,199}(?![\s\S])"
GRAPH_NAME = r"^(?:[A-Za-z_][A-Za-z0-9_. -]{0,199}|<lambda>)(?![\s\S])"
IDENT = r"^[A-Za-z_][A-Za-z0-9_]{0,99}(?![\s\S])"
MAX_ID = 2**31 - 1
NODE_ID = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
NAMED_IDS = {"type": "object", "propertyNames": {"pattern": NAME, "maxLength": 200}, "additionalProperties": NODE_ID}


def _tagged(tag, body):
    return {"type": "object", "properties": {tag: body}, "required": [tag], "additionalProperties": False}


ARRAY_BODY = {
    "type": "object",
    "properties": {
        "dtype": {"enum": list(DTYPES)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": MAX_DIM}, "maxItems": MAX_RANK},
        "data": {"type": "array", "items": {"anyOf": [{"type": ["number", "boolean"]},
                                                      {"enum": ["nan", "inf", "-inf"]}]}},
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
                "name": {"type": "string", "pattern": GRAPH_NAME, "maxLength": 200},
                "outputs": {**NAMED_IDS, "minProperties": 1},
                "grads": NAMED_IDS,
                "edge_grads": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["src", "dst", "pos", "upstream", "local", "downstream"],
                    "properties": {"src": NODE_ID, "dst": NODE_ID, "pos": {"type": "integer", "minimum": 0},
                                   "upstream": NODE_ID, "downstream": NODE_ID,
                                   "local": {"anyOf": [NODE_ID, {"type": "null"}]}}}},
                "updates": {"type": "object", "propertyNames": {"pattern": "^[0-9]{1,10}(?![\\s\\S])"},
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
                "op": {"type": "string", "pattern": IDENT, "maxLength": 100},
                "attrs": {"type": "object", "propertyNames": {"pattern": IDENT, "maxLength": 100},
                          "additionalProperties": {"$ref": "#/$defs/value"}},
                "shape": {"type": "array", "maxItems": MAX_RANK, "items": {"anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": MAX_DIM},
                    {"type": "string", "pattern": NAME, "maxLength": 200}]}},
                "dtype": {"enum": list(DTYPES)},
                "name": {"type": "string", "pattern": NAME, "maxLength": 200},
                "phase": {"enum": ["forward", "backward"]},
            },
        },
        "value": {"anyOf": [
            {"type": ["null", "boolean", "number"]},
            {"type": "string", "maxLength": 1000},
            {"type": "array", "items": {"$ref": "#/$defs/value"}},
            _tagged("tuple", {"type": "array", "items": {"$ref": "#/$defs/value"}}),
            _tagged("dict", {"type": "object", "propertyNames": {"maxLength": 200},
                             "additionalProperties": {"$ref": "#/$defs/value"}}),
            _tagged("float", {"enum": ["nan", "inf", "-inf"]}),
            _tagged("scalar", {"type": "object", "required": ["dtype", "value"], "additionalProperties": False,
                               "properties": {"dtype": {"enum": list(DTYPES)},
                                              "value": {"anyOf": [{"type": ["number", "boolean"]},
                                                                  {"enum": ["nan", "inf", "-inf"]}]}}}),
            _tagged("array", ARRAY_BODY),
        ]},
    },
}
