"""Just enough of PNG to read a screenshot's pixels (8-bit RGB or RGBA, not interlaced: what Chromium writes)."""

from __future__ import annotations

import operator
import struct
import zlib
from collections import Counter
from itertools import accumulate


def read_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    offset, chunks, header = 8, [], None
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, color type {color}, interlace {interlace}")
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        previous = _unfiltered(raw[start], bytearray(raw[start + 1:start + 1 + stride]), previous, channels)
        rows.append(bytes(previous))
    return width, height, rows


_BYTE = (255).__and__  # x mod 256, as a C function for map()


def _unfiltered(kind: int, line: bytearray, previous: bytearray, channels: int) -> bytearray:
    """A scanline with its PNG filter undone (the PNG specification, section 9). None, Up and Sub go through map()
    and accumulate(), whose loops run in C; Average and Paeth depend on the byte just decoded, byte by byte."""
    if kind == 0:
        return line
    if kind == 2:  # Up
        return bytearray(map(_BYTE, map(operator.add, line, previous)))
    if kind == 1:  # Sub: per channel, a running sum
        for channel in range(channels):
            line[channel::channels] = bytes(map(_BYTE, accumulate(line[channel::channels])))
        return line
    if kind == 3:  # Average
        for i in range(len(line)):
            left = line[i - channels] if i >= channels else 0
            line[i] = (line[i] + (left + previous[i]) // 2) & 0xFF
        return line
    if kind == 4:  # Paeth; the first pixel has no left or up-left neighbour (0): its predictor is up
        for i in range(channels):
            line[i] = (line[i] + previous[i]) & 0xFF
        for i in range(channels, len(line)):
            left, up, up_left = line[i - channels], previous[i], previous[i - channels]
            # p = left + up - up_left; the neighbour nearest p predicts (ties: left, then up)
            pa, pb, pc = abs(up - up_left), abs(left - up_left), abs(left + up - 2 * up_left)
            line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        return line
    raise ValueError(f"unknown PNG filter type {kind}")


def colours(data: bytes) -> dict[tuple[int, int, int], int]:
    """How many pixels of each RGB colour the PNG has."""
    width, _, rows = read_png(data)
    return count_colours(width, rows)


def count_colours(width: int, rows: list[bytes]) -> dict[tuple[int, int, int], int]:
    """How many pixels of each RGB colour rows of RGB or RGBA bytes (read_png's) have."""
    step = len(rows[0]) // width if rows else 3
    counts: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        counts.update(zip(row[0::step], row[1::step], row[2::step], strict=True))
    return dict(counts)
