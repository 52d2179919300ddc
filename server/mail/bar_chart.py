"""A small bar chart as a PNG, for the report e-mail: mail clients show an inline PNG where
they drop an SVG (Gmail, Outlook). Written with zlib from the standard library: a chart of
flat bars needs no drawing library, and a 7- or 31-bar chart at 1120 x 240 is about 3 KB.

    png = bar_chart([12, 30, 0, 8])  # bytes of a PNG, drawn at twice its shown size
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

# Drawn at twice the size the e-mail shows (WIDTH x HEIGHT), so it is sharp on a phone.
WIDTH, HEIGHT, SCALE = 560, 120, 2
BACKGROUND = (255, 255, 255)
BAR = (15, 107, 99)  # zeef.css's --accent (light)
EMPTY = (214, 222, 221)  # a day without visitors: a sliver, so the day is still seen
GRID = (232, 236, 235)


def bar_chart(values: Sequence[float | None], width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """One bar a value, scaled to the largest; None and 0 as a sliver on the baseline."""
    w, h = width * SCALE, height * SCALE
    top = max((v for v in values if v), default=0) or 1
    pixels = [bytearray(bytes(BACKGROUND) * w) for _ in range(h)]
    baseline = h - 1
    for y in (baseline, baseline - (h - 8) // 2):  # the baseline, and a guide at half
        pixels[y][:] = bytes(GRID) * w
    count = max(len(values), 1)
    slot = w / count
    gap = max(2, round(slot * 0.2))
    for index, value in enumerate(values):
        left, right = round(index * slot + gap / 2), round((index + 1) * slot - gap / 2)
        if right <= left:
            right = left + 1
        tall = round((h - 8) * (value or 0) / top)
        colour = BAR if tall > 0 else EMPTY
        tall = max(tall, 2 * SCALE)
        run = bytes(colour) * (right - left)
        for y in range(h - tall, h):
            pixels[y][3 * left : 3 * right] = run
    return _png(w, h, pixels)


def _png(width: int, height: int, rows: Sequence[bytes | bytearray]) -> bytes:
    """An 8-bit RGB PNG (PNG spec, ISO/IEC 15948): each row with filter type 0."""
    raw = b"".join(b"\x00" + bytes(row) for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
