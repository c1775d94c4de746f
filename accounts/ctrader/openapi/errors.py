"""The errors the Open API client raises: transport failures (reconnect) and the server's error answers."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from datetime import datetime

from .messages import Envelope, PayloadType, int64, maintenance_end


class OpenApiError(Exception):
    """Base of every error this client raises."""


class OpenApiTransportError(OpenApiError):
    """Connecting failed, the socket closed, or a response did not come in time. Transient: reconnect."""


class OpenApiRequestTimeout(OpenApiTransportError):
    """No response to a request within its timeout."""


@dataclass(eq=False, repr=False)
class OpenApiErrorResponse(OpenApiError):
    """The server answered with ProtoOAErrorRes (2142) or ProtoErrorRes (50)."""

    error_code: str
    description: str = ""
    _: KW_ONLY
    payload_type: int = PayloadType.OA_ERROR_RES
    ctid_trader_account_id: int | None = None
    maintenance_end: datetime | None = None
    retry_after: float | None = None
    seq: int = 0

    def __post_init__(self) -> None:
        # The message is the exception's only argument, as for any other exception.
        super().__init__(f"{self.error_code}: {self.description}" if self.description else self.error_code)

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> OpenApiErrorResponse:
        payload = envelope.payload
        account_id = payload.get("ctidTraderAccountId")
        retry_after = payload.get("retryAfter")
        return cls(
            str(payload.get("errorCode") or "UNKNOWN_ERROR"),
            str(payload.get("description") or ""),
            payload_type=envelope.payload_type,
            ctid_trader_account_id=int64(account_id) if account_id not in (None, "") else None,
            maintenance_end=maintenance_end(payload),
            retry_after=float(retry_after) if retry_after is not None and retry_after != "" else None,
            seq=envelope.seq,
        )
