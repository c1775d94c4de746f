"""The trader-facing JSON API (session auth, CSRF kept). Every queryset starts from request.user."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, cast

from django.conf import settings
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.figures_display import call_level, is_stale, margin_call_level, stale_before
from accounts.models import AccountFigures, Ctid, Jurisdiction, TradingAccount
from accounts.selectors import (
    HISTORY_RESOLUTIONS,
    AccountValues,
    account_history,
    account_list_for_user,
    account_values,
    accounts_for_user,
    auto_resolution,
    ctids_for_user,
    trader_for_user,
)


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


class FiguresSerializer(serializers.Serializer):
    """The latest figures of an account, in its deposit currency."""

    currency = serializers.CharField()
    balance = serializers.DecimalField(max_digits=30, decimal_places=10, coerce_to_string=True)
    equity = serializers.DecimalField(max_digits=30, decimal_places=10, coerce_to_string=True)
    used_margin = serializers.DecimalField(max_digits=30, decimal_places=10, coerce_to_string=True)
    free_margin = serializers.DecimalField(max_digits=30, decimal_places=10, coerce_to_string=True)
    unrealized_pnl = serializers.DecimalField(
        max_digits=30, decimal_places=10, coerce_to_string=True, help_text="Open P/L: equity minus balance."
    )
    margin_level = serializers.DecimalField(
        max_digits=20,
        decimal_places=4,
        coerce_to_string=True,
        allow_null=True,
        help_text="Equity / used margin x 100, in percent; null when no margin is used.",
    )
    margin_call = serializers.BooleanField(help_text="The margin level is under the margin-call level.")
    margin_call_level = serializers.DecimalField(max_digits=7, decimal_places=2, coerce_to_string=True)
    positions_count = serializers.IntegerField(
        allow_null=True, help_text="Null when the source has no positions."
    )
    positions_volume = serializers.DecimalField(
        max_digits=30, decimal_places=2, coerce_to_string=True, allow_null=True
    )
    read_at = serializers.DateTimeField(help_text="When the figures were read from cTrader.")
    stale = serializers.BooleanField(help_text="Read longer ago than the freshness limit: may have changed.")
    source = serializers.ChoiceField(choices=AccountFigures.Source.choices)  # type: ignore[assignment]


_AT = serializers.DateTimeField()
_BALANCE = serializers.DecimalField(max_digits=30, decimal_places=10, coerce_to_string=True)
_LEVEL_PLACES = Decimal("0.01")


def _text(value: Decimal | None) -> str | None:
    # Fixed-point like DRF's DecimalField: a zero PostgreSQL returns with ten places is Decimal("0E-10").
    return None if value is None else format(value, "f")


def _figures_data(
    figures: AccountFigures | _FiguresValues, *, currency: str, level: Decimal, read_at: str, stale: bool
) -> dict[str, Any]:
    """The shape of ``FiguresSerializer``; ``read_at`` already in the serializer's format."""
    return {
        "currency": currency,
        "balance": _text(figures.balance),
        "equity": _text(figures.equity),
        "used_margin": _text(figures.used_margin),
        "free_margin": _text(figures.free_margin),
        "unrealized_pnl": _text(figures.unrealized_pnl),
        "margin_level": _text(figures.margin_level),
        "margin_call": figures.margin_level is not None and figures.margin_level < level,
        "margin_call_level": str(level.quantize(_LEVEL_PLACES)),
        "positions_count": figures.positions_count,
        "positions_volume": _text(figures.positions_volume),
        "read_at": read_at,
        "stale": stale,
        "source": figures.source,
    }


@extend_schema_field(FiguresSerializer(allow_null=True))
class FiguresField(serializers.Field):
    """An account's figures in the shape of ``FiguresSerializer``, formatted directly: a list of accounts
    would otherwise build one nested serializer per row. Decimals keep the digits the database stores."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, account: TradingAccount) -> dict[str, Any] | None:
        try:
            figures = account.figures
        except AccountFigures.DoesNotExist:
            return None
        return _figures_data(
            figures,
            currency=figures.currency or account.currency,
            level=margin_call_level(account),
            read_at=_AT.to_representation(figures.read_at),
            stale=is_stale(figures.read_at),
        )


class TradingAccountSerializer(serializers.ModelSerializer):
    environment = serializers.ChoiceField(choices=["live", "demo"], read_only=True)
    ctid = serializers.IntegerField(source="ctid.user_id", read_only=True, help_text="The cTID userId.")
    jurisdiction = JurisdictionSerializer(read_only=True, allow_null=True)
    balance = serializers.DecimalField(
        max_digits=30, decimal_places=10, coerce_to_string=True, read_only=True, allow_null=True
    )
    figures = FiguresField()

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
            "figures",
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


class AccountPagination(PageNumberPagination):
    """Pages of ``PAGE_SIZE`` (100) accounts; ``page_size`` asks for up to 200, a large trader's whole list."""

    page_size_query_param = "page_size"
    max_page_size = 200
    page_size_query_description = f"Accounts per page, 1 to {max_page_size} (default 100)."

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters


class _FiguresValues(NamedTuple):
    """An account's figures out of ``AccountValues``, under ``AccountFigures``' names."""

    balance: Decimal | None
    equity: Decimal | None
    used_margin: Decimal | None
    free_margin: Decimal | None
    unrealized_pnl: Decimal | None
    margin_level: Decimal | None
    positions_count: int | None
    positions_volume: Decimal | None
    source: str | None


def account_items(accounts: list[AccountValues]) -> list[dict[str, Any]]:
    """What ``TradingAccountSerializer`` makes of each account (the same keys, values and formats, pinned by
    ``tests/accounts/test_dashboard_speed.py``), built from plain values: for a page of 200 accounts, a
    serializer per account and per jurisdiction would cost several times the rest of the request. A time or
    a jurisdiction that recurs is formatted once."""
    before = stale_before()
    default_level = call_level(None)
    times: dict[datetime, str] = {}
    jurisdictions: dict[int | None, dict[str, Any] | None] = {None: None}

    def at(value: datetime) -> str:
        text = times.get(value)
        if text is None:
            text = times[value] = _AT.to_representation(value)
        return text

    items = []
    for a in accounts:
        if a.jurisdiction_id not in jurisdictions:
            jurisdictions[a.jurisdiction_id] = {
                "broker_name": a.jurisdiction_broker_name,
                "display_name": a.jurisdiction_display_name,
                "tradingview_enabled": a.jurisdiction_tradingview_enabled,
            }
        figures = None
        read_at = a.read_at
        if read_at is not None:
            figures = _figures_data(
                _FiguresValues(
                    a.figures_balance,
                    a.figures_equity,
                    a.figures_used_margin,
                    a.figures_free_margin,
                    a.figures_unrealized_pnl,
                    a.figures_margin_level,
                    a.figures_positions_count,
                    a.figures_positions_volume,
                    a.figures_source,
                ),
                currency=a.figures_currency or a.currency,
                level=default_level if a.margin_call_level is None else a.margin_call_level,
                read_at=at(read_at),
                stale=read_at < before,
            )
        items.append(
            {
                "ctid_trader_account_id": a.ctid_trader_account_id,
                "login": a.login,
                "is_live": a.is_live,
                "environment": "live" if a.is_live else "demo",
                "ctid": a.ctid_user_id,
                "broker_name": a.broker_name,
                "broker_title": a.broker_title,
                "jurisdiction": jurisdictions[a.jurisdiction_id],
                "is_tradingview": a.is_tradingview,
                "status": a.status,
                "balance": None if a.balance is None else _BALANCE.to_representation(a.balance),
                "currency": a.currency,
                "balance_updated_at": None if a.balance_updated_at is None else at(a.balance_updated_at),
                "last_synced_at": None if a.last_synced_at is None else at(a.last_synced_at),
                "figures": figures,
            }
        )
    return items


@extend_schema(summary="The signed-in trader's trading accounts")
class AccountListView(generics.ListAPIView):
    serializer_class = TradingAccountSerializer
    pagination_class = AccountPagination

    def get_queryset(self) -> QuerySet[TradingAccount]:
        return accounts_for_user(user=self.request.user)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The serializer describes the items (schema, detail view); a page of them is built from plain values.
        # Counted and sliced like a queryset, by prepared statements (accounts.selectors.AccountListRows).
        page = self.paginate_queryset(cast(Sequence[Any], account_list_for_user(user=request.user)))
        assert page is not None  # AccountPagination always pages
        return self.get_paginated_response(account_items(account_values(page)))


@extend_schema(summary="One of the signed-in trader's trading accounts")
class AccountDetailView(generics.RetrieveAPIView):
    serializer_class = TradingAccountSerializer
    lookup_field = "ctid_trader_account_id"

    def get_queryset(self) -> QuerySet[TradingAccount]:
        return accounts_for_user(user=self.request.user)


class HistoryQuerySerializer(serializers.Serializer):
    """The query of the history endpoint (``from`` is a Python keyword, hence ``from_`` renamed below)."""

    from_ = serializers.DateTimeField(
        required=False, help_text="Start (ISO 8601); default: one day before `to`."
    )
    to = serializers.DateTimeField(required=False, help_text="End (ISO 8601); default: now.")
    resolution = serializers.ChoiceField(
        choices=["auto", *HISTORY_RESOLUTIONS], default="auto", help_text="Bucket size; `auto` picks by span."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end: datetime = attrs.get("to") or timezone.now()
        start: datetime = attrs.get("from") or end - timedelta(days=1)
        if start >= end:
            raise serializers.ValidationError({"from": "`from` must be before `to`."})
        if end - start > timedelta(days=settings.FIGURES_DAILY_RETENTION_DAYS + 1):
            raise serializers.ValidationError({"from": "The period is longer than the history kept."})
        resolution = attrs["resolution"]
        if resolution == "auto":
            resolution = auto_resolution(start, end)
        buckets = (end - start).total_seconds() / HISTORY_RESOLUTIONS[resolution][1]
        if buckets > settings.FIGURES_HISTORY_MAX_POINTS:
            raise serializers.ValidationError(
                {
                    "resolution": f"{resolution} over this period gives more than "
                    f"{settings.FIGURES_HISTORY_MAX_POINTS} points: choose a coarser resolution or a shorter period."
                }
            )
        return {"start": start, "end": end, "resolution": resolution}


class HistoryPointSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    balance = serializers.DecimalField(max_digits=30, decimal_places=10, coerce_to_string=True)
    equity = serializers.DecimalField(max_digits=30, decimal_places=10, coerce_to_string=True)
    used_margin = serializers.DecimalField(max_digits=30, decimal_places=10, coerce_to_string=True)


class HistorySerializer(serializers.Serializer):
    ctid_trader_account_id = serializers.IntegerField()
    currency = serializers.CharField()
    resolution = serializers.ChoiceField(choices=list(HISTORY_RESOLUTIONS))
    from_ = serializers.DateTimeField()
    to = serializers.DateTimeField()
    points = HistoryPointSerializer(many=True, help_text="The last value of each bucket, oldest first.")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class AccountHistoryView(APIView):
    @extend_schema(
        summary="The balance and equity history of one of the signed-in trader's accounts",
        parameters=[
            OpenApiParameter(
                "from", OpenApiTypes.DATETIME, description="Start (ISO 8601); default: `to` - 1 day."
            ),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="End (ISO 8601); default: now."),
            OpenApiParameter(
                "resolution",
                OpenApiTypes.STR,
                enum=["auto", *HISTORY_RESOLUTIONS],
                description="minute, hour or day buckets (the last value of each); auto picks by span.",
            ),
        ],
        responses=HistorySerializer,
    )
    def get(self, request: Request, ctid_trader_account_id: int) -> Response:
        account = get_object_or_404(
            accounts_for_user(user=request.user), ctid_trader_account_id=ctid_trader_account_id
        )
        query = HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end, resolution = (query.validated_data[k] for k in ("start", "end", "resolution"))
        points = account_history(account=account, start=start, end=end, resolution=resolution)
        try:
            currency = account.figures.currency or account.currency
        except AccountFigures.DoesNotExist:
            currency = account.currency
        data = {
            "ctid_trader_account_id": account.ctid_trader_account_id,
            "currency": currency,
            "resolution": resolution,
            "from": start,
            "to": end,
            "points": [],
        }
        body = dict(HistorySerializer(data).data)
        # Up to thousands of points: formatted directly, in the serializer's formats (ISO time, the stored
        # Decimal's digits), rather than through one serializer per point.
        at = serializers.DateTimeField()
        body["points"] = [
            {
                "at": at.to_representation(p.at),
                "balance": str(p.balance),
                "equity": str(p.equity),
                "used_margin": str(p.used_margin),
            }
            for p in points
        ]
        return Response(body)
