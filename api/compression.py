"""gzip for text responses, for the phones on a mobile network and the embedded default that has no
reverse proxy in front (behind one that compresses, the responses arrive already encoded and pass).

JSON, the console's scripts and styles, CSV and SVG of at least `MIN_BYTES` are compressed when the
client accepts gzip; everything else (photos, XLSX, streams such as the home page's event stream,
ranges) goes as it is. A file's ETag becomes weak, since the compressed bytes are another
representation of the same content, so that revalidation still answers 304."""

from __future__ import annotations

import gzip

from flask import Flask, Response, request

MIN_BYTES = 1024
LEVEL = 6  # zlib's default: most of the gain at a fraction of level 9's CPU
TEXT_TYPES = ("application/json", "application/javascript", "text/javascript", "text/css", "text/html",
              "text/csv", "text/plain", "image/svg+xml", "application/manifest+json", "application/geo+json")


def register_compression(app: Flask) -> None:
    app.after_request(compress)


def compress(response: Response) -> Response:
    if not _compressible(response):
        return response
    response.vary.add("Accept-Encoding")
    if request.accept_encodings["gzip"] <= 0:
        return response
    response.direct_passthrough = False  # a file sent by send_file: read it here
    data = response.get_data()
    if len(data) < MIN_BYTES:
        return response
    response.set_data(gzip.compress(data, compresslevel=LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    etag, weak = response.get_etag()
    if etag and not weak:
        response.set_etag(etag, weak=True)
    return response


def _compressible(response: Response) -> bool:
    generated = response.is_streamed and not response.direct_passthrough  # a stream, not a file from send_file
    return (request.method != "HEAD" and response.status_code == 200 and not generated
            and "Content-Encoding" not in response.headers and "Content-Range" not in response.headers
            and response.mimetype in TEXT_TYPES)
