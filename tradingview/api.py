"""The trader's TradingView links as JSON; adapter tokens never appear."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import trader_for_user_or_404

from . import selectors
from .models import Grant
from .services.revocation import grant_disconnect


class GrantAccountSerializer(serializers.Serializer):
    ctid_trader_account_id = serializers.IntegerField()
    login = serializers.IntegerField()
    environment = serializers.CharField()
    is_tradingview = serializers.BooleanField()


class GrantSerializer(serializers.ModelSerializer):
    connection = serializers.CharField(source="client.name")
    environment = serializers.CharField(source="client.environment")
    accounts = GrantAccountSerializer(many=True)
    issued_at = serializers.DateTimeField(source="adapter_token_issued_at")
    expires_at = serializers.DateTimeField(source="adapter_token_expires_at")

    class Meta:
        model = Grant
        fields = ["id", "connection", "environment", "accounts", "issued_at", "expires_at"]


class GrantListView(ListAPIView):
    serializer_class = GrantSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.active_grants(trader=trader_for_user_or_404(user=self.request.user))


class DisconnectResultSerializer(serializers.Serializer):
    revoked = serializers.IntegerField(help_text="Adapter tokens revoked at once (/logout answered).")
    pending = serializers.IntegerField(help_text="Adapter tokens whose /logout is being retried.")


class GrantDisconnectView(APIView):
    @extend_schema(request=None, responses=DisconnectResultSerializer)
    def post(self, request: Request, pk: int) -> Response:
        result = grant_disconnect(trader=trader_for_user_or_404(user=request.user), grant_id=pk)
        if result is None:
            raise Http404
        return Response({"revoked": result.revoked, "pending": result.pending}, status=status.HTTP_200_OK)
