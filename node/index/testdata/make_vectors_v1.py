#!/usr/bin/env python3
"""Writes vectors_v1.vec from ../segment_format.md alone (not with DASH's encoder).

A VECS file, framing version 1, vectors version 1, segment id "fixture-vec-v1" padded with two
NUL bytes: one section, tenant "acme", dimension 2, L2, docs 0, 2 and 5 with the vectors (1, 2),
(3, 4) and (5, 6), as a FAISS IndexFlat ("IxF2"). Run once; never regenerate it from a newer
format: its point is that files of the documented v1 format still read.
"""
import struct
import zlib

ROWS = [(1.0, 2.0), (3.0, 4.0), (5.0, 6.0)]
DOCS = [0, 2, 5]

# FAISS 1.7.3 IndexFlat: fourcc, d (i32), ntotal (i64), two dummies 1<<20 (i64), is_trained
# (u8), metric_type (i32: 0 inner product, 1 L2), then the codes as a float vector: its
# length in floats (u64) and the floats.
floats = [x for row in ROWS for x in row]
faiss = (b"IxF2" + struct.pack("<iqqqBi", 2, len(ROWS), 1 << 20, 1 << 20, 1, 1) +
         struct.pack("<Q", len(floats)) + struct.pack("<%df" % len(floats), *floats))

body = struct.pack("<I", 1)  # sections
body += struct.pack("<I", 4) + b"acme"
body += struct.pack("<III", 2, 2, len(ROWS))  # dimension, metric (2 = L2), rows
body += b"".join(struct.pack("<I", d) for d in DOCS)
body += struct.pack("<I", 0)  # kind: IndexFlat
body += struct.pack("<Q", len(faiss)) + faiss

header = b"DASHSEG\0" + b"VECS" + struct.pack("<I", 1) + b"fixture-vec-v1\0\0"
footer = struct.pack("<QI", len(body), zlib.crc32(header + body) & 0xFFFFFFFF) + b"GESD"
with open("vectors_v1.vec", "wb") as f:
    f.write(header + body + footer)
