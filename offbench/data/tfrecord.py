"""TFRecord files and the ``tf.train.Example`` records in them, read without TensorFlow.

A TFRecord file (optionally gzip-compressed as a whole) is a sequence of records, each
``uint64 length | uint32 masked crc32c(length) | data | uint32 masked crc32c(data)``, all
little-endian; the mask is ``((crc >> 15) | (crc << 17)) + 0xa282ead8`` (mod 2**32). A record's
data here is a serialized ``tf.train.Example``: ``Features`` (field 1) holding a map from feature
name to a ``Feature`` that is one of ``BytesList`` (1), ``FloatList`` (2) or ``Int64List`` (3),
each a repeated field 1 (floats and ints packed or not). Only that much of the protobuf wire
format is decoded. The CRC comes from ``google-crc32c`` (its C implementation where built).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from offbench.errors import OffbenchError, UsageError

MASK_DELTA = 0xA282EAD8
Feature = list[bytes] | np.ndarray


def masked_crc(data: bytes) -> int:
    """TFRecord's masked crc32c of ``data``."""
    try:
        import google_crc32c
    except ImportError:
        raise UsageError("reading TFRecord files needs google-crc32c: pip install 'offbench[atari]'") from None
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")  # type: ignore[return-value]


def records(path: Path) -> Iterator[bytes]:
    """The data of each record of ``path``, checked against both CRCs; a one-line
    :class:`OffbenchError` naming the file and the record otherwise."""
    index = 0
    try:
        with _open(path) as f:
            while True:
                head = f.read(12)
                if not head:
                    return
                if len(head) < 12:
                    raise OffbenchError(f"{path}: record {index}: truncated header ({len(head)} of 12 bytes)")
                length, length_crc = struct.unpack("<QI", head)
                if masked_crc(head[:8]) != length_crc:
                    raise OffbenchError(f"{path}: record {index}: wrong CRC of its length; not a TFRecord file or damaged")
                data = f.read(length)
                tail = f.read(4)
                if len(data) < length or len(tail) < 4:
                    raise OffbenchError(f"{path}: record {index}: truncated ({len(data)} of {length} bytes)")
                if masked_crc(data) != struct.unpack("<I", tail)[0]:
                    raise OffbenchError(f"{path}: record {index}: wrong CRC of its data (damaged)")
                yield data
                index += 1
    except (OSError, EOFError, zlib.error) as e:
        raise OffbenchError(f"{path}: record {index}: unreadable ({e})") from None


# -- protobuf wire format: just what tf.train.Example needs -------------------------------------
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of each field of one message: bytes for length-delimited
    fields, ints for varints, raw little-endian bytes for fixed 32/64-bit ones."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("a field runs past the end of its message")
            yield number, wire, buf[pos : pos + size]
            pos += size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise ValueError("a fixed-size field runs past the end of its message")
            yield number, wire, buf[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _feature(buf: bytes) -> Feature:
    for kind, _, payload in _fields(buf):
        assert isinstance(payload, bytes)
        if kind == 1:  # BytesList
            return [bytes(v) for n, _, v in _fields(payload) if n == 1]  # type: ignore[arg-type]
        if kind == 2:  # FloatList: packed (one length-delimited field) or one fixed32 per value
            raw = b"".join(v for n, _, v in _fields(payload) if n == 1)  # type: ignore[misc]
            return np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if kind == 3:  # Int64List: packed varints or one varint per value
            values: list[int] = []
            for n, wire, v in _fields(payload):
                if n != 1:
                    continue
                if wire == 0:
                    values.append(_signed64(int(v)))  # type: ignore[arg-type]
                else:
                    pos, packed = 0, bytes(v)  # type: ignore[arg-type]
                    while pos < len(packed):
                        x, pos = _varint(packed, pos)
                        values.append(_signed64(x))
            return np.asarray(values, dtype=np.int64)
    return []


def parse_example(data: bytes) -> dict[str, Feature]:
    """A serialized ``tf.train.Example`` as ``{name: list of bytes | float32 array | int64 array}``;
    ``ValueError`` if it is not one."""
    out: dict[str, Feature] = {}
    for number, wire, features in _fields(data):
        if number != 1 or wire != 2:
            continue
        for n, w, entry in _fields(features):  # type: ignore[arg-type]
            if n != 1 or w != 2:
                continue
            key, value = "", b""
            for en, _, ev in _fields(entry):  # type: ignore[arg-type]
                if en == 1:
                    key = bytes(ev).decode()  # type: ignore[arg-type]
                elif en == 2:
                    value = bytes(ev)  # type: ignore[arg-type]
            out[key] = _feature(value)
    return out
