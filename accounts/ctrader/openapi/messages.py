"""The JSON envelope of the Open API and the names that matter to this project.

Every frame is one JSON text ``{"clientMsgId": str, "payloadType": int, "payload": {...}}``; payload keys are
the ``.proto`` field names in camelCase. int64 values travel as JSON numbers. Error codes travel as enum
*names* (strings) and the numbers of the two error enums overlap, so everything here switches on names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any


class PayloadType(IntEnum):
    # Common enum (OpenApiCommonMessages.proto).
    PROTO_MESSAGE = 5
    ERROR_RES = 50
    HEARTBEAT_EVENT = 51
    # ProtoOAPayloadType (OpenApiModelMessages.proto), 2100..2188.
    APPLICATION_AUTH_REQ = 2100
    APPLICATION_AUTH_RES = 2101
    ACCOUNT_AUTH_REQ = 2102
    ACCOUNT_AUTH_RES = 2103
    VERSION_REQ = 2104
    VERSION_RES = 2105
    ASSET_LIST_REQ = 2112
    ASSET_LIST_RES = 2113
    TRADER_REQ = 2121
    TRADER_RES = 2122
    TRADER_UPDATED_EVENT = 2123
    RECONCILE_REQ = 2124
    RECONCILE_RES = 2125
    EXECUTION_EVENT = 2126
    MARGIN_CHANGED_EVENT = 2141
    OA_ERROR_RES = 2142
    ACCOUNTS_TOKEN_INVALIDATED_EVENT = 2147
    CLIENT_DISCONNECT_EVENT = 2148
    GET_ACCOUNTS_BY_ACCESS_TOKEN_REQ = 2149
    GET_ACCOUNTS_BY_ACCESS_TOKEN_RES = 2150
    GET_CTID_PROFILE_BY_TOKEN_REQ = 2151
    GET_CTID_PROFILE_BY_TOKEN_RES = 2152
    ACCOUNT_LOGOUT_REQ = 2162
    ACCOUNT_LOGOUT_RES = 2163
    ACCOUNT_DISCONNECT_EVENT = 2164
    MARGIN_CALL_TRIGGER_EVENT = 2172
    REFRESH_TOKEN_REQ = 2173
    REFRESH_TOKEN_RES = 2174
    GET_POSITION_UNREALIZED_PNL_REQ = 2187
    GET_POSITION_UNREALIZED_PNL_RES = 2188


OA_PAYLOAD_TYPE_MIN = 2100
OA_PAYLOAD_TYPE_MAX = 2188

ERROR_PAYLOAD_TYPES = frozenset({PayloadType.ERROR_RES, PayloadType.OA_ERROR_RES})

# Messages the server pushes without a request; they carry no clientMsgId of ours.
EVENT_PAYLOAD_TYPES = frozenset(
    {
        PayloadType.HEARTBEAT_EVENT,
        PayloadType.TRADER_UPDATED_EVENT,
        PayloadType.EXECUTION_EVENT,
        PayloadType.MARGIN_CHANGED_EVENT,
        PayloadType.MARGIN_CALL_TRIGGER_EVENT,
        PayloadType.ACCOUNTS_TOKEN_INVALIDATED_EVENT,
        PayloadType.CLIENT_DISCONNECT_EVENT,
        PayloadType.ACCOUNT_DISCONNECT_EVENT,
    }
)

# --- Error names (ProtoOAErrorCode and ProtoErrorCode) grouped by what the caller must do ---
# The access token used for the request is dead: refresh, then retry once.
TOKEN_ERRORS = frozenset({"OA_AUTH_TOKEN_EXPIRED", "CH_ACCESS_TOKEN_INVALID"})
# The account itself is gone or disabled: mark it, stop retrying.
ACCOUNT_GONE_ERRORS = frozenset(
    {"RET_NO_SUCH_LOGIN", "RET_ACCOUNT_DISABLED", "CH_CTID_TRADER_ACCOUNT_NOT_FOUND"}
)
# Too many requests on this connection: slow down, honour retryAfter when given.
RATE_LIMIT_ERRORS = frozenset({"REQUEST_FREQUENCY_EXCEEDED", "BLOCKED_PAYLOAD_TYPE"})
# The server is in maintenance: wait until maintenanceEndTimestamp.
MAINTENANCE_ERRORS = frozenset({"SERVER_IS_UNDER_MAINTENANCE"})
# The application itself is refused (blocked, not activated, wrong id/secret): reconnecting will not help.
APP_AUTH_REFUSED_ERRORS = frozenset({"CH_CLIENT_AUTH_FAILURE", "CH_OA_CLIENT_NOT_FOUND"})
# Account auth was sent for an account that already has a session on this connection.
ALREADY_LOGGED_IN_ERRORS = frozenset({"ALREADY_LOGGED_IN"})
# The request reached the wrong environment (a demo account on the live host or the reverse).
ROUTING_ERRORS = frozenset({"CANT_ROUTE_REQUEST"})

# Millisecond timestamps are above this (year 5138 in seconds), second timestamps far below.
_MILLISECONDS_THRESHOLD = 100_000_000_000


class EnvelopeError(ValueError):
    """A frame that is not a valid JSON envelope."""


@dataclass(frozen=True)
class Envelope:
    payload_type: int
    payload: dict[str, Any] = field(default_factory=dict)
    client_msg_id: str | None = None
    # Position of the frame in its connection's receive order (1, 2, ...; 0 when not received on a socket).
    # The socket is ordered, so an event with a lower seq than an AccountAuthRes was sent before that session.
    seq: int = field(default=0, compare=False)

    @property
    def is_error(self) -> bool:
        return self.payload_type in ERROR_PAYLOAD_TYPES


def encode(payload_type: int, payload: dict[str, Any], client_msg_id: str | None = None) -> str:
    message: dict[str, Any] = {"payloadType": int(payload_type), "payload": payload}
    if client_msg_id is not None:
        message["clientMsgId"] = client_msg_id
    return json.dumps(message, separators=(",", ":"))


def decode(text: str | bytes, *, seq: int = 0) -> Envelope:
    try:
        message = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise EnvelopeError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise EnvelopeError("the frame is not a JSON object")
    payload_type = message.get("payloadType")
    if isinstance(payload_type, bool) or not isinstance(payload_type, int):
        raise EnvelopeError("payloadType is missing or not an integer")
    payload = message.get("payload") or {}
    if not isinstance(payload, dict):
        raise EnvelopeError("payload is not an object")
    client_msg_id = message.get("clientMsgId")
    if client_msg_id is not None and not isinstance(client_msg_id, str):
        client_msg_id = str(client_msg_id)
    return Envelope(payload_type, payload, client_msg_id or None, seq)


def maintenance_end(payload: dict[str, Any]) -> datetime | None:
    """The end of a maintenance window as an aware UTC datetime.

    ProtoOAErrorRes (2142) documents seconds and ProtoErrorRes (50) milliseconds. The magnitude tells them
    apart, which also survives a server that sends the other unit than its documentation says.
    """
    raw = payload.get("maintenanceEndTimestamp")
    if raw is None or raw in ("", 0):
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return None
    seconds = value / 1000 if value >= _MILLISECONDS_THRESHOLD else float(value)
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def int64(value: Any) -> int:
    """An int64 field: a JSON number, or a string when the peer serialized it the protobuf way."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an int64")
    return int(value)
