"""The OpenAPI 3.1 description of the inbox API, by hand (``GET /api/v1/openapi.json``).

Kept beside the routes on purpose: a test validates it (openapi-spec-validator)
and checks that every route is described.
"""

from __future__ import annotations

from typing import Any

from mailio_trio.inbox._chaos_json import MAX_RATE_MESSAGES

__all__ = ["openapi"]

_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_ADDRESS = {
    "type": "object",
    "properties": {"Name": _STR, "Address": _STR},
    "required": ["Name", "Address"],
}
_ADDRESSES = {"type": "array", "items": {"$ref": "#/components/schemas/Address"}}
_ATTACHMENT = {
    "type": "object",
    "properties": {
        "PartID": _STR,
        "FileName": _STR,
        "ContentType": _STR,
        "ContentID": _STR,
        "Size": _INT,
    },
    "required": ["PartID", "FileName", "ContentType", "Size"],
}
_SUMMARY = {
    "type": "object",
    "properties": {
        "ID": _STR,
        "MessageID": _STR,
        "Read": _BOOL,
        "From": {"$ref": "#/components/schemas/Address"},
        "To": _ADDRESSES,
        "Cc": _ADDRESSES,
        "Bcc": _ADDRESSES,
        "ReplyTo": _ADDRESSES,
        "Subject": _STR,
        "Created": {"type": "string", "format": "date-time"},
        "Username": _STR,
        "Tags": {"type": "array", "items": _STR},
        "Size": _INT,
        "Attachments": _INT,
        "Snippet": _STR,
    },
    "required": ["ID", "MessageID", "From", "To", "Subject", "Created", "Size", "Snippet"],
}
_LIST = {
    "type": "object",
    "properties": {
        "total": _INT,
        "unread": _INT,
        "count": _INT,
        "messages_count": _INT,
        "messages_unread": _INT,
        "start": _INT,
        "tags": {"type": "array", "items": _STR},
        "messages": {"type": "array", "items": {"$ref": "#/components/schemas/MessageSummary"}},
    },
    "required": ["total", "unread", "count", "messages"],
}
_NULLABLE_STR = {"type": ["string", "null"]}
_MESSAGE = {
    "type": "object",
    "properties": {
        "ID": _STR,
        "MessageID": _STR,
        "From": {"$ref": "#/components/schemas/Address"},
        "To": _ADDRESSES,
        "Cc": _ADDRESSES,
        "Bcc": _ADDRESSES,
        "ReplyTo": _ADDRESSES,
        "ReturnPath": _STR,
        "Subject": _STR,
        "Date": _STR,
        "Tags": {"type": "array", "items": _STR},
        "Username": _STR,
        "Text": _STR,
        "HTML": _STR,
        "Size": _INT,
        "Inline": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}},
        "Attachments": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}},
        "Created": {"type": "string", "format": "date-time"},
        "Envelope": {
            "type": "object",
            "description": "Ours: the SMTP envelope (From is null for <>).",
            "properties": {"From": _NULLABLE_STR, "To": {"type": "array", "items": _STR}},
        },
        "Session": {
            "type": "object",
            "description": "Ours: what the SMTP session said.",
            "properties": {
                "ClientAddress": _STR,
                "Helo": _NULLABLE_STR,
                "TLS": _BOOL,
                "AuthUser": _NULLABLE_STR,
                "AuthenticationResults": _NULLABLE_STR,
            },
        },
    },
    "required": ["ID", "From", "To", "Subject", "Text", "HTML", "Size", "Attachments"],
}

_PERCENT = {"type": "number", "minimum": 0, "maximum": 100}
_CODE = {"type": "integer", "minimum": 400, "maximum": 599}
_MAILPIT_TRIGGER = {
    "type": "object",
    "properties": {"ErrorCode": _CODE, "Probability": _PERCENT},
    "required": ["ErrorCode", "Probability"],
}
_STAGE = {
    "type": "string",
    "enum": ["connect", "helo", "ehlo", "mail", "rcpt", "data", "message", "rset", "noop", "auth"],
}
# Exactly one action; the other two keys, when present, say "not this one".
_ACTIONS = [
    {
        "properties": {"ErrorCode": _CODE, "Drop": {"const": False}, "Delay": {"const": 0}},
        "required": ["ErrorCode"],
    },
    {
        "properties": {"ErrorCode": {"const": 0}, "Drop": {"const": True}, "Delay": {"const": 0}},
        "required": ["Drop"],
    },
    {
        "properties": {
            "ErrorCode": {"const": 0},
            "Drop": {"const": False},
            "Delay": {"type": "number", "exclusiveMinimum": 0, "description": "seconds"},
        },
        "required": ["Delay"],
    },
]
_ACTION = {"Stage": _STAGE, "ErrorCode": _INT, "Drop": _BOOL, "Delay": {"type": "number"}}
_CHAOS = {
    "type": "object",
    "description": "Mailpit's Sender (MAIL), Recipient (RCPT) and Authentication (AUTH) "
    "triggers; ours: Triggers at any stage, counted Faults, RateLimit, Seed. Each action "
    "is exactly one of ErrorCode, Drop, Delay.",
    "properties": {
        "Sender": _MAILPIT_TRIGGER,
        "Recipient": _MAILPIT_TRIGGER,
        "Authentication": _MAILPIT_TRIGGER,
        "Triggers": {
            "type": "array",
            "description": "A later entry for a stage replaces an earlier one.",
            "items": {
                "type": "object",
                "properties": {**_ACTION, "Probability": _PERCENT},
                "required": ["Stage", "Probability"],
                "oneOf": _ACTIONS,
            },
        },
        "Faults": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {**_ACTION, "Count": {"type": "integer", "minimum": 1}},
                "required": ["Stage"],
                "oneOf": _ACTIONS,
            },
        },
        "RateLimit": {
            "type": ["object", "null"],
            "properties": {
                "Messages": {"type": "integer", "minimum": 1, "maximum": MAX_RATE_MESSAGES},
                "Interval": {"type": "number", "exclusiveMinimum": 0},
            },
            "required": ["Messages", "Interval"],
        },
        "Seed": {"type": ["integer", "null"]},
    },
}

_ID = {"name": "ID", "in": "path", "required": True, "schema": _STR,
       "description": "A message ID, or `latest` for the newest message."}  # fmt: skip
_PAGING = [
    {"name": "start", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
]
_NOT_FOUND = {
    "404": {"description": "No such message", "content": {"text/plain": {"schema": _STR}}}
}


def _json(ref: str, description: str = "OK") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _get(summary: str, responses: dict[str, Any], parameters: list[Any] | None = None) -> Any:
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _chaos_paths() -> dict[str, Any]:
    not_enabled = {"description": "Chaos is not enabled, or a bad body",
                   "content": {"text/plain": {"schema": _STR}}}  # fmt: skip
    body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChaosTriggers"}}},
    }
    return {
        "get": {
            "summary": "The chaos triggers (Mailpit), plus our faults and rate limit",
            "responses": {"200": _json("ChaosTriggers"), "400": not_enabled},
        },
        "put": {
            "summary": "Replace every chaos trigger, fault and the rate limit (Mailpit)",
            "requestBody": body,
            "responses": {"200": _json("ChaosTriggers"), "400": not_enabled},
        },
        "delete": {
            "summary": "Ours: switch all chaos off",
            "responses": {"200": _json("ChaosTriggers"), "400": not_enabled},
        },
    }


def _release_path() -> dict[str, Any]:
    text = {"text/plain": {"schema": _STR}}
    body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["To"],
                    "properties": {"To": {"type": "array", "items": _STR, "minItems": 1}},
                }
            }
        },
    }
    return {
        "post": {
            "summary": "Send the message as received to the --release-to server (Mailpit)",
            "parameters": [_ID],
            "requestBody": body,
            "responses": {
                "200": {"description": "Sent", "content": text},
                "400": {"description": "Release not configured, or a bad body", "content": text},
                **_NOT_FOUND,
                "502": {
                    "description": "The release server refused or is unreachable",
                    "content": text,
                },
            },
        }
    }


def openapi() -> dict[str, Any]:
    """The document; a fresh dict each call."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mailio-trio capture inbox",
            "version": "1",
            "description": "Messages captured by `mailio-trio serve --capture`. Paths and "
            "JSON shapes follow Mailpit's v1 API where Mailpit has the call.",
        },
        "paths": {
            "/api/v1/messages": {
                "get": {
                    "summary": "List messages, newest first (Mailpit)",
                    "parameters": _PAGING,
                    "responses": {"200": _json("MessagesList")},
                },
                "delete": {
                    "summary": "Delete messages by ID, or all without a body (Mailpit)",
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"IDs": {"type": "array", "items": _STR}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "ok", "content": {"text/plain": {"schema": _STR}}},
                        "400": {"description": 'A body that is not {"IDs": [...]}'},
                    },
                },
            },
            "/api/v1/search": _get(
                "Search: from:, to:, subject:, free text; every term must match (Mailpit)",
                {"200": _json("MessagesList")},
                [{"name": "query", "in": "query", "required": True, "schema": _STR}, *_PAGING],
            ),
            "/api/v1/message/{ID}": _get(
                "One message, parsed; marks it read (Mailpit)",
                {"200": _json("Message"), **_NOT_FOUND},
                [_ID],
            ),
            "/api/v1/message/{ID}/raw": _get(
                "The message source as received (Mailpit)",
                {
                    "200": {"description": "OK", "content": {"text/plain": {"schema": _STR}}},
                    **_NOT_FOUND,
                },
                [_ID],
            ),
            "/api/v1/message/{ID}/release": _release_path(),
            "/api/v1/message/{ID}/headers": _get(
                "The message headers, name to values (Mailpit)",
                {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": {"type": "array", "items": _STR},
                                }
                            }
                        },
                    },
                    **_NOT_FOUND,
                },
                [_ID],
            ),
            "/api/v1/message/{ID}/part/{PartID}": _get(
                "One part's decoded content, as a download (Mailpit)",
                {
                    "200": {"description": "The part", "content": {"*/*": {"schema": _STR}}},
                    **_NOT_FOUND,
                },
                [_ID, {"name": "PartID", "in": "path", "required": True, "schema": _STR}],
            ),
            "/api/v1/message/{ID}/html": _get(
                "Ours: the HTML part under a strict CSP, for a sandboxed frame",
                {
                    "200": {"description": "OK", "content": {"text/html": {"schema": _STR}}},
                    **_NOT_FOUND,
                },
                [_ID, {"name": "remote", "in": "query", "schema": {"enum": ["0", "1"]}}],
            ),
            "/api/v1/wait": _get(
                "Ours: wait until at least `count` messages are stored (long poll)",
                {
                    "200": _json("MessagesList", "The count was reached"),
                    "408": _json("MessagesList", "The timeout came first"),
                },
                [
                    {"name": "count", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    {"name": "timeout", "in": "query", "schema": {"type": "integer"}},
                ],
            ),
            "/api/v1/events": _get(
                "Ours: server-sent events, `new` (a MessageSummary) and `delete` ({IDs})",
                {"200": {"description": "OK", "content": {"text/event-stream": {"schema": _STR}}}},
            ),
            "/api/v1/chaos": _chaos_paths(),
            "/api/v1/openapi.json": _get(
                "This document",
                {"200": {"description": "OK", "content": {"application/json": {"schema": {}}}}},
            ),
        },
        "components": {
            "schemas": {
                "Address": _ADDRESS,
                "Attachment": _ATTACHMENT,
                "MessageSummary": _SUMMARY,
                "MessagesList": _LIST,
                "Message": _MESSAGE,
                "ChaosTriggers": _CHAOS,
            }
        },
    }
