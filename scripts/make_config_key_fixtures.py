#!/usr/bin/env python3
"""Regenerate forge-core/tests/fixtures/config/scmodelforge_keys.txt: every
key of scModelForge's config schema (`src/scmodelforge/config/schema.py`),
one dotted path a line, read with Python's `ast` from the dataclasses (no
scModelForge install needed). A field whose type is another dataclass of
the file (or `X | None` of one) is expanded into its keys; every other
field is a key.

forge's test `config::keys` checks this list against forge's schema and
against docs/config-keys.md.

Usage, from the repository root (SCHEMA defaults to the mirror's copy):
  python3 scripts/make_config_key_fixtures.py [SCHEMA]
"""

import ast
import subprocess
import sys
from pathlib import Path

OUT = Path("forge-core/tests/fixtures/config/scmodelforge_keys.txt")
MIRROR = "/work/.mirror/EhsanRS+scModelForge/repo"


def read_schema(argv):
    if len(argv) > 1:
        return Path(argv[1]).read_text()
    return subprocess.run(
        ["git", "-C", MIRROR, "show", "HEAD:src/scmodelforge/config/schema.py"],
        check=True, capture_output=True, text=True).stdout


def dataclasses(tree):
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            fields = []
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    fields.append((item.target.id, ast.unparse(item.annotation)))
            out[node.name] = fields
    return out


def keys(classes, name, prefix):
    for field, annotation in classes[name]:
        inner = annotation.replace(" | None", "").strip()
        path = f"{prefix}.{field}" if prefix else field
        if inner in classes:
            yield from keys(classes, inner, path)
        else:
            yield path


def main():
    classes = dataclasses(ast.parse(read_schema(sys.argv)))
    lines = list(keys(classes, "ScModelForgeConfig", ""))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} keys to {OUT}")


if __name__ == "__main__":
    main()
