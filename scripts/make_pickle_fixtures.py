#!/usr/bin/env python3
"""Writes forge-pickle/tests/fixtures/: real pickles made by CPython's own
`pickle` module, read back by forge-pickle's tests (src/tests.rs), which
state the expected values by hand.

- core_p{0..5}.pkl: the same plain-data object (dict/list/tuple/str/int
  incl. LONG, float, bool, None, nesting, a memo-shared list) at every
  protocol, so that each protocol's opcodes (text INT/LONG/FLOAT/UNICODE
  at 0, BIN* at 1+, LONG1/TUPLEn/NEWTRUE at 2+, SHORT_BINUNICODE/MEMOIZE/
  FRAME at 4+) are exercised.
- extra_p{3,4,5}.pkl: bytes (3+), set/frozenset (4+), bytearray (5):
  at lower protocols these are pickled through REDUCE and refused.
- medians_p{2,4}.pkl, medians.json, tokens_p4.pkl, tokens.json:
  Geneformer-shaped dictionaries (str -> float, str -> int).
- hostile_reduce.pkl: an object whose __reduce__ calls os.system (only
  pickled here, never unpickled).
- numpy_values_p{3,4}.pkl: a dict of NumPy scalars, as Geneformer's
  published dictionaries hold (numpy.int16 tokens, numpy.float64 medians):
  read through the one structural exception for NumPy scalars.
- numpy_dtype.pkl: a bare numpy dtype: refused (not plain data).

Run: .venv/bin/python scripts/make_pickle_fixtures.py
"""
import json
import os
import pickle

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "forge-pickle", "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


shared = [7]
core = {
    "ENSG00000000003": 2.5,
    "ints": [0, 1, -1, 255, 256, 65535, 65536, -(2**31), 2**31 - 1, 2**40, -(2**63), 2**63 - 1],
    "flags": [True, False, None],
    "floats": [0.1, -1e300, float("inf")],
    "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
    "unicode": "h\u00e9llo \u2713 \U0001d11e \\ back",
    "nested": {"x": {"y": [[], {}]}},
    "shared": [shared, shared],
}
for proto in range(6):
    write(f"core_p{proto}.pkl", pickle.dumps(core, protocol=proto))

extra = {"bytes": b"\x00\xff", "long": b"x" * 300}
write("extra_p3.pkl", pickle.dumps(extra, protocol=3))
extra4 = dict(extra, set={3}, frozen=frozenset({4}))
write("extra_p4.pkl", pickle.dumps(extra4, protocol=4))
extra5 = dict(extra4, ba=bytearray(b"ab"))
write("extra_p5.pkl", pickle.dumps(extra5, protocol=5))

medians = {"ENSG00000000003": 2.001186019549122, "ENSG00000000005": 0.5, "ENSG00000000419": 3.0}
tokens = {"<pad>": 0, "<mask>": 1, "ENSG00000000003": 2, "ENSG00000000005": 3, "ENSG00000000419": 4}
write("medians_p2.pkl", pickle.dumps(medians, protocol=2))
write("medians_p4.pkl", pickle.dumps(medians, protocol=4))
write("medians.json", json.dumps(medians, indent=1).encode())
write("tokens_p4.pkl", pickle.dumps(tokens, protocol=4))
write("tokens.json", json.dumps(tokens).encode())


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


write("hostile_reduce.pkl", pickle.dumps({"ENSG00000000003": Evil()}, protocol=4))
numpy_values = {"f8": np.float64(2.001186019549122), "f4": np.float32(1.5), "f2": np.float16(-0.5),
                "i8": np.int64(-5), "i4": np.int32(-70000), "i2": np.int16(2), "i1": np.int8(-3),
                "u1": np.uint8(200), "u2": np.uint16(65535), "u8": np.uint64(7), "b1": np.bool_(True),
                "big": np.dtype(">f8").type(3.25), "plain": 1}
for proto in (3, 4):
    write(f"numpy_values_p{proto}.pkl", pickle.dumps(numpy_values, protocol=proto))
write("numpy_dtype.pkl", pickle.dumps(np.dtype("f8"), protocol=4))
print("wrote", sorted(os.listdir(OUT)))
