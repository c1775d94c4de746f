"""The Open API gateway's health, per environment, for staff and monitoring."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.services.gateway import gateway_status_report


class GatewayStatusView(APIView):
    """GET: state, connected since, authorized accounts, last event and last error of each connection,
    and every gateway process (host, pid, environments, cTIDs and accounts held, its connections).

    ``healthy`` is true when the connection is up and its heartbeat is recent. The response is 503 when an
    environment the gateway reports on is not healthy, so a monitor can alert on the status code alone.
    """

    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Open API gateway status (staff)",
        responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        report = gateway_status_report()
        healthy = bool(report["environments"]) and all(e["healthy"] for e in report["environments"].values())
        report["healthy"] = healthy
        return Response(report, status=200 if healthy else 503)
