#!/usr/bin/env python3
"""Regenerate forge-core/tests/fixtures/config/interpolation.json: how
OmegaConf (the library scModelForge loads its configs with) resolves
`${...}` interpolations, for forge's config tests to match.

Each case is a YAML text and the environment variables set while it is
resolved; the fixture records OmegaConf's resolved tree
(`OmegaConf.to_container(cfg, resolve=True)`) or, when OmegaConf refuses the
text, the error's class name and the key that held the bad value.

Needs `omegaconf` (`.venv/bin/pip install omegaconf`); run from the
repository root: `.venv/bin/python scripts/make_interpolation_fixtures.py`.
"""

import json
import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

OUT = Path("forge-core/tests/fixtures/config/interpolation.json")

CASES = [
    # (name, yaml, env)
    ("absolute_int", "a:\n  b: 3\nc: ${a.b}\n", {}),
    ("absolute_float", "a:\n  b: 3.5\nc: ${a.b}\n", {}),
    ("absolute_bool_null", "a:\n  t: true\n  n: null\nc: ${a.t}\nd: ${a.n}\n", {}),
    ("absolute_list_and_map", "a:\n  l: [1, 2]\n  m:\n    k: v\nc: ${a.l}\nd: ${a.m}\n", {}),
    ("list_items", "a:\n  l: [10, 20]\nc: ${a.l.1}\nd: ${a.l[0]}\n", {}),
    ("embedded", "a:\n  b: 3\nc: x${a.b}y\nd: ${a.b} and ${a.b}\ne: ${a.b}${a.b}\n", {}),
    ("embedded_python_str", "a:\n  f: 1.0e-05\n  g: 100000.0\n  h: 1.0e+20\n  t: false\n  n: null\n"
     "  l: [1, x, 2.5, null, true]\n  m:\n    k: s\n    n: 1\n"
     "c: f=${a.f} g=${a.g} h=${a.h} t=${a.t} n=${a.n}\nd: l=${a.l}\ne: m=${a.m}\n", {}),
    ("spaces_inside", "a:\n  b: 3\nc: ${ a.b }\n", {}),
    ("relative_sibling", "a:\n  b: 3\n  c: ${.b}\n", {}),
    ("relative_parent", "x: 1\na:\n  b: 3\n  d:\n    c: ${..b}\n    e: ${...x}\n", {}),
    ("relative_in_list", "a:\n  - 1\n  - ${.0}\n  - ${..b}\nb: 4\n", {}),
    ("chained", "a: ${b}\nb: ${c}\nc: 5\n", {}),
    ("through_interpolated_mapping", "a: ${m}\nm:\n  k: 2\nc: ${a.k}\n", {}),
    ("nested_key", "k: b\na:\n  b: 7\nc: ${a.${k}}\n", {}),
    ("env_set", "c: ${oc.env:FORGE_TEST_A}\nd: ${oc.env:FORGE_TEST_NUM}\n",
     {"FORGE_TEST_A": "bar", "FORGE_TEST_NUM": "12"}),
    ("env_defaults", "a: ${oc.env:FORGE_UNSET,dflt}\nb: ${oc.env:FORGE_UNSET,5}\n"
     "c: ${oc.env:FORGE_UNSET,null}\nd: ${oc.env:FORGE_UNSET,true}\ne: ${oc.env:FORGE_UNSET,1e-4}\n"
     "f: \"${oc.env:FORGE_UNSET,'x,y'}\"\ng: ${oc.env:FORGE_UNSET, spaced }\nh: ${oc.env:FORGE_UNSET,007}\n", {}),
    ("env_set_wins_over_default", "c: ${oc.env:FORGE_TEST_A,dflt}\n", {"FORGE_TEST_A": "set"}),
    ("env_nested_name", "k: FORGE_TEST_A\nc: ${oc.env:${k}}\nd: ${oc.env:FORGE_UNSET,${k}}\n",
     {"FORGE_TEST_A": "bar"}),
    ("env_embedded", "c: ${oc.env:FORGE_TEST_A}/data/x.h5ad\n", {"FORGE_TEST_A": "/home/u"}),
    ("select", "a:\n  b: 1\nc: ${oc.select:a.b,3}\nd: ${oc.select:a.z,3}\ne: ${oc.select:a.z}\n", {}),
    ("escapes", "a: x\nb: \\${a}\nc: 'q\\\\${a}'\nd: 'q\\\\\\${a}'\ne: 'q\\n'\nf: $x {y}\ng: 'a}b'\n", {}),
    ("no_interpolation", "a: 1\nb: [x, 2.5]\nc:\n  d: text\n", {}),
    # Errors: OmegaConf refuses these.
    ("err_missing_key", "a:\n  b: 3\nc: ${a.z}\n", {}),
    ("err_missing_section", "c: ${nope.x}\n", {}),
    ("err_env_unset", "c: ${oc.env:FORGE_UNSET}\n", {}),
    ("err_cycle", "c: ${a}\na: ${c}\n", {}),
    ("err_self", "c: ${c}\n", {}),
    ("err_unclosed", "c: '${a.b'\n", {}),
    ("err_unknown_resolver", "c: ${foo:1}\n", {}),
    ("err_list_index", "l: [10, 20]\nc: ${l.5}\n", {}),
]


def error_key(e):
    key = getattr(e, "full_key", None)
    return None if key is None else str(key)


def run_case(name, text, env):
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        cfg = OmegaConf.create(text)
        tree = OmegaConf.to_container(cfg, resolve=True)
        return {"name": name, "yaml": text, "env": env, "expected": tree}
    except Exception as e:  # noqa: BLE001 -- every OmegaConf refusal is recorded
        return {"name": name, "yaml": text, "env": env,
                "error": type(e).__name__, "error_key": error_key(e)}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main():
    for var in ("FORGE_UNSET",):
        if var in os.environ:
            sys.exit(f"{var} must not be set")
    cases = [run_case(*c) for c in CASES]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"omegaconf": __import__("omegaconf").__version__,
                               "cases": cases}, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
