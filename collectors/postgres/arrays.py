"""PostgreSQL's binary array format, packed and unpacked with numpy.

An int8[] parameter: psycopg's list dumper looks at every Python int to pick the array's element
type, about 0.6 us an element, 3 ms for the 5,000 signatures a collector cycle sends; numpy packs
them in 0.1 ms. float8[] results (array_send): hundreds of rows of counters become one matrix at
once, rather than thousands of Python floats converted one by one.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Sequence

import numpy as np
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

INT8_OID = 20
INT8_ARRAY_OID = 1016
_ITEM = np.dtype([("size", ">i4"), ("value", ">i8")])  # each element: its length, then its value


class Int8Array(bytes):
    """The binary form of an int8[] (array_send's layout); bind it like any other parameter."""

    @classmethod
    def of(cls, values: Collection[int]) -> Int8Array:
        if not values:
            return cls(struct.pack(">3i", 0, 0, INT8_OID))  # no dimensions, no nulls
        items = np.empty(len(values), dtype=_ITEM)
        items["size"] = 8
        items["value"] = np.fromiter(values, dtype=np.int64, count=len(values))
        header = struct.pack(">5i", 1, 0, INT8_OID, len(values), 1)  # 1 dimension, no nulls, bound 1
        return cls(header + items.tobytes())


class _Int8ArrayDumper(Dumper):
    format = Format.BINARY
    oid = INT8_ARRAY_OID

    def dump(self, obj: Int8Array) -> bytes:
        return obj


def register_int8_array(conn: psycopg.Connection) -> None:
    conn.adapters.register_dumper(Int8Array, _Int8ArrayDumper)


def float8_rows(blobs: Sequence[bytes], width: int) -> np.ndarray:
    """Rows of `array_send(ARRAY[...]::float8[])` results, each of `width` non-null values, as a
    (rows, width) matrix."""
    layout = np.dtype([("head", "V20"), ("items", [("size", ">i4"), ("value", ">f8")], (width,))])
    if not blobs:
        return np.zeros((0, width))
    return np.frombuffer(b"".join(blobs), dtype=layout)["items"]["value"].astype(np.float64)
