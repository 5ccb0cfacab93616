"""Real images for upload tests (the API decodes every photo it keeps)."""

from __future__ import annotations

import io

from PIL import Image


def image(fmt: str = "JPEG", width: int = 8, height: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 160, 60)).save(out, fmt)
    return out.getvalue()


def noisy_jpeg(width: int, height: int) -> bytes:
    """A JPEG that does not compress away: random pixels, for tests that need a large file."""
    import random

    rng = random.Random(7)
    img = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=95)
    return out.getvalue()


JPEG = image("JPEG")
PNG = image("PNG")
