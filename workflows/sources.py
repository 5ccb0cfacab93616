"""The register of what reports monitoring data: emission sources (an enterprise's outlet) and
monitoring stations, each a data logger known by its MN, placed in a grid; and per source and
pollutant the limit that decides an exceedance, and which data it applies to."""

from __future__ import annotations

import hmac
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, Numeric, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base, UTCDateTime

KINDS = ("outlet", "station")
# which data a limit applies to: the HJ 212 command that carries it, and the value read
DATA_KINDS = {"rtd": ("2011", "Rtd"), "minute": ("2051", "Avg"), "hourly": ("2061", "Avg"), "daily": ("2031", "Avg")}


class MonitoringSource(Base):
    __tablename__ = "monitoring_source"

    mn: Mapped[str] = mapped_column(String(64), primary_key=True)  # the data logger's MN
    tenant: Mapped[str] = mapped_column(String(12), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # outlet | station
    name: Mapped[str] = mapped_column(String(200))  # e.g. "某电厂 1#排口" or a station name
    enterprise: Mapped[str | None] = mapped_column(String(200))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(40))
    password: Mapped[str] = mapped_column(String(64))  # the PW the logger sends (HJ 212 has no better)
    offline_after_s: Mapped[int] = mapped_column(Integer, default=3600)  # no data this long → offline alarm
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PollutantLimit(Base):
    __tablename__ = "pollutant_limit"
    __table_args__ = (UniqueConstraint("mn", "pollutant", "data_kind", name="uq_limit"),
                      Index("ix_limit_mn", "mn"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mn: Mapped[str] = mapped_column(ForeignKey("monitoring_source.mn"))
    pollutant: Mapped[str] = mapped_column(String(20))  # HJ 212 code, e.g. a21026 (SO2)
    data_kind: Mapped[str] = mapped_column(String(10))  # rtd | minute | hourly | daily
    limit_value: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    unit: Mapped[str] = mapped_column(String(20))  # mg/m3, mg/L, ...
    basis: Mapped[str] = mapped_column(String(20), default="permit")  # permit | standard
    use_converted: Mapped[bool] = mapped_column(Boolean, default=False)  # compare the Zs (O2-corrected) value
    hysteresis: Mapped[float] = mapped_column(Float, default=0.1)  # back under limit × (1 − h) to clear


def authenticate(s: Session, mn: str, password: str) -> MonitoringSource | None:
    """The active source with this MN and PW, else None (compared in constant time)."""
    source = s.get(MonitoringSource, mn)
    if source is None or not source.active:
        return None
    return source if hmac.compare_digest(source.password.encode(), password.encode()) else None


def limits_for(s: Session, mn: str) -> list[PollutantLimit]:
    return list(s.scalars(select(PollutantLimit).where(PollutantLimit.mn == mn)))
