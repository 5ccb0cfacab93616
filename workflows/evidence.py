"""On-site evidence for a task: check-ins inside the grid's geofence and photos. The handling task
of a case cannot be completed without a check-in in place and at least one photo."""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import shapely
from PIL import Image
from sqlalchemy import Float, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, Database, UTCDateTime

from .grids import Grid

IMAGE_TYPES = {"image/jpeg": (b"\xff\xd8\xff", "jpg"), "image/png": (b"\x89PNG\r\n\x1a\n", "png")}
PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
MAX_PIXELS = 64_000_000  # above any phone camera's default output; decoding it takes ~200 MB
EVIDENCE_TASKS = {"handle"}  # env_case's on-site handling
METERS_PER_DEGREE = 111_320.0


class Evidence(Base):
    __tablename__ = "task_evidence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(36), index=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # checkin | photo
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)  # outside the grid by this much (0 inside)
    sha256: Mapped[str | None] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(50))
    size: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str | None] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EvidenceError(ValueError):
    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field, self.message, self.status = field, message, status


@dataclass(frozen=True)
class Place:
    task_id: str
    instance_id: str
    grid_code: str


def distance_outside_m(db: Database, grid_code: str, lon: float, lat: float) -> float:
    """How far (metres, roughly) the point is outside the grid's current polygon; 0 inside."""
    with db.session() as s:
        geometry = s.scalar(select(Grid.geometry).where(Grid.code == grid_code, Grid.valid_to.is_(None)))
    if geometry is None:
        raise EvidenceError("grid", f"grid {grid_code} is unknown")
    polygon, point = shapely.from_geojson(geometry), shapely.Point(lon, lat)
    if polygon.covers(point):
        return 0.0
    degrees = polygon.distance(point)
    return degrees * METERS_PER_DEGREE * max(math.cos(math.radians(lat)), 0.2)


def check_in(db: Database, now: datetime, place: Place, actor: str, lon: float, lat: float,
             tolerance_m: float) -> Evidence:
    outside = distance_outside_m(db, place.grid_code, lon, lat)
    if outside > tolerance_m:
        raise EvidenceError("lon", f"the check-in is {outside:.0f} m outside grid {place.grid_code} "
                                   f"(tolerance {tolerance_m:.0f} m)")
    row = Evidence(task_id=place.task_id, instance_id=place.instance_id, kind="checkin", lon=lon, lat=lat,
                   distance_m=round(outside, 1), created_by=actor, created_at=now)
    with db.transaction() as s:
        s.add(row)
    return row


def store_photo(db: Database, now: datetime, place: Place, actor: str, data: bytes, content_type: str,
                storage: Path, max_bytes: int) -> Evidence:
    """Keep a photo under `storage/yyyy/mm/<sha256>.<ext>` (content-addressed: a re-upload is one file)."""
    check_photo(data, content_type, max_bytes)
    row = photo_row(keep_photo_file(storage, now, data, content_type), place, actor, now)
    with db.transaction() as s:
        s.add(row)
    return row


@dataclass(frozen=True)
class KeptPhoto:
    sha256: str
    content_type: str
    size: int
    path: str  # relative to the storage directory


def check_photo(data: bytes, content_type: str, max_bytes: int, field: str = "file") -> None:
    """Type, size, magic bytes and a full decode; EvidenceError naming `field` when any fails."""
    try:
        if content_type not in IMAGE_TYPES:
            raise EvidenceError(field, f"photos must be {', '.join(IMAGE_TYPES)}", status=415)
        if len(data) > max_bytes:
            raise EvidenceError(field, f"the photo is larger than {max_bytes} bytes ({max_bytes / 2**20:.3g} MB)",
                                status=413)
        if not data.startswith(IMAGE_TYPES[content_type][0]):
            raise EvidenceError(field, f"the file is not a {content_type} image", status=415)
        check_decodes(data, content_type)
    except EvidenceError as exc:
        if exc.field != field:
            raise EvidenceError(field, exc.message, exc.status) from None
        raise


def keep_photo_file(storage: Path, now: datetime, data: bytes, content_type: str) -> KeptPhoto:
    """Write a checked photo's file once (a file nobody links to yet is harmless: the same bytes
    sent again land on it)."""
    digest = hashlib.sha256(data).hexdigest()
    relative = Path(f"{now:%Y}") / f"{now:%m}" / f"{digest}.{IMAGE_TYPES[content_type][1]}"
    target = storage / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(target)  # atomic: a reader never sees half a photo
    return KeptPhoto(digest, content_type, len(data), str(relative))


def photo_row(kept: KeptPhoto, place: Place, actor: str, now: datetime) -> Evidence:
    return Evidence(task_id=place.task_id, instance_id=place.instance_id, kind="photo", sha256=kept.sha256,
                    content_type=kept.content_type, size=kept.size, path=kept.path, created_by=actor,
                    created_at=now)


def check_decodes(data: bytes, content_type: str) -> None:
    """Decode the whole image: a photo cut short in transfer, or bytes that only start like one, is
    refused rather than kept as evidence nobody can open later."""
    try:
        with Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[content_type]]) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise EvidenceError("file", f"the photo has more than {MAX_PIXELS // 1_000_000} megapixels "
                                            f"({width}×{height})")
            image.verify()  # structure and checksums
        with Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[content_type]]) as image:
            image.load()  # every pixel: a truncated JPEG fails here
    except EvidenceError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise EvidenceError("file", f"the photo cannot be decoded: a damaged or incomplete {content_type} "
                                    f"({type(exc).__name__})") from None


def missing_evidence(db: Database, task_id: str, element_id: str) -> list[str]:
    """What the task still lacks before it may be completed (empty: nothing)."""
    if element_id not in EVIDENCE_TASKS:
        return []
    with db.session() as s:
        kinds = dict(s.execute(select(Evidence.kind, func.count()).where(Evidence.task_id == task_id)
                               .group_by(Evidence.kind)).all())
    return [f"a {kind}" for kind in ("checkin", "photo") if not kinds.get(kind)]


def case_photos(db: Database, instance_id: str) -> list[Evidence]:
    """Every photo of a case's instance: those it was reported with and its tasks' (on site), oldest first."""
    with db.session() as s:
        return list(s.scalars(select(Evidence).where(Evidence.instance_id == instance_id, Evidence.kind == "photo")
                              .order_by(Evidence.id)))
