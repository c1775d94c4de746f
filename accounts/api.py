"""The trader-facing JSON API (session auth, CSRF kept). Every queryset starts from request.user."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Ctid, Jurisdiction, TradingAccount
from accounts.selectors import accounts_for_user, ctids_for_user, trader_for_user


class CtidSerializer(serializers.ModelSerializer):
    class Meta:
        model = Ctid
        fields = ["user_id", "state", "state_changed_at", "last_synced_at"]


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.EmailField()
    is_trader = serializers.BooleanField(help_text="False for staff users, who have no trading profile.")
    kyc_verified = serializers.BooleanField()
    suspended = serializers.BooleanField()
    ctids = CtidSerializer(many=True)


class JurisdictionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Jurisdiction
        fields = ["broker_name", "display_name", "tradingview_enabled"]


class TradingAccountSerializer(serializers.ModelSerializer):
    environment = serializers.ChoiceField(choices=["live", "demo"], read_only=True)
    ctid = serializers.IntegerField(source="ctid.user_id", read_only=True, help_text="The cTID userId.")
    jurisdiction = JurisdictionSerializer(read_only=True, allow_null=True)
    balance = serializers.DecimalField(
        max_digits=30, decimal_places=10, coerce_to_string=True, read_only=True, allow_null=True
    )

    class Meta:
        model = TradingAccount
        fields = [
            "ctid_trader_account_id",
            "login",
            "is_live",
            "environment",
            "ctid",
            "broker_name",
            "broker_title",
            "jurisdiction",
            "is_tradingview",
            "status",
            "balance",
            "currency",
            "balance_updated_at",
            "last_synced_at",
        ]
        read_only_fields = fields


class MeView(APIView):
    @extend_schema(responses=MeSerializer, summary="The signed-in user and their cTIDs")
    def get(self, request: Request) -> Response:
        user = request.user
        trader = trader_for_user(user=user)
        data = {
            "username": user.get_username(),
            "email": getattr(user, "email", ""),
            "is_trader": trader is not None,
            "kyc_verified": bool(trader and trader.kyc_verified),
            "suspended": bool(trader and trader.suspended),
            "ctids": ctids_for_user(user=user) if trader else [],
        }
        return Response(MeSerializer(data).data)


@extend_schema(summary="The signed-in trader's trading accounts")
class AccountListView(generics.ListAPIView):
    serializer_class = TradingAccountSerializer

    def get_queryset(self) -> QuerySet[TradingAccount]:
        return accounts_for_user(user=self.request.user)


@extend_schema(summary="One of the signed-in trader's trading accounts")
class AccountDetailView(generics.RetrieveAPIView):
    serializer_class = TradingAccountSerializer
    lookup_field = "ctid_trader_account_id"

    def get_queryset(self) -> QuerySet[TradingAccount]:
        return accounts_for_user(user=self.request.user)
