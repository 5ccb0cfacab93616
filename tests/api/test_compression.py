"""Text responses go gzip-compressed to clients that accept it (api/compression.py); other clients,
small bodies, images and ranges get the bytes as they are, and a compressed file still revalidates."""

from __future__ import annotations

import gzip
import re

GZIP = {"Accept-Encoding": "gzip, deflate"}


def test_json_is_compressed_for_a_client_that_accepts_gzip_and_reads_back_the_same(client):
    plain = client.get("/api/v1/openapi.json")
    packed = client.get("/api/v1/openapi.json", headers=GZIP)
    assert plain.status_code == packed.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"] and "Accept-Encoding" in plain.headers["Vary"]
    body = gzip.decompress(packed.get_data())
    assert body == plain.get_data()
    assert int(packed.headers["Content-Length"]) == len(packed.get_data()) < len(body) / 4


def test_a_client_that_refuses_gzip_and_a_small_body_get_identity(client):
    refused = client.get("/api/v1/openapi.json", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers
    small = client.get("/api/v1/me/nothing-here", headers=GZIP)  # a JSON 404 of a few dozen bytes
    assert small.status_code == 404 and small.is_json and "Content-Encoding" not in small.headers


def test_a_console_script_is_compressed_and_revalidates_with_its_weak_etag(client):
    script = re.search(r'src="(/assets/app-[A-Z0-9]+\.js)"', client.get("/").get_data(as_text=True)).group(1)
    first = client.get(script, headers=GZIP)
    assert first.status_code == 200 and first.headers["Content-Encoding"] == "gzip"
    assert b"function" in gzip.decompress(first.get_data()) or b"=>" in gzip.decompress(first.get_data())
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    again = client.get(script, headers={**GZIP, "If-None-Match": etag})
    assert again.status_code == 304 and not again.get_data()


def test_images_and_ranges_go_as_they_are(client):
    png = client.get("/icon-192.png", headers=GZIP)
    assert png.status_code == 200 and png.mimetype == "image/png" and "Content-Encoding" not in png.headers
    script = re.search(r'src="(/assets/app-[A-Z0-9]+\.js)"', client.get("/").get_data(as_text=True)).group(1)
    part = client.get(script, headers={**GZIP, "Range": "bytes=0-99"})
    assert part.status_code == 206 and "Content-Encoding" not in part.headers and len(part.get_data()) == 100
