#!/usr/bin/env python3
"""Checks the dependency direction of src/veridl/: no file includes a header of a higher layer.

    python3 scripts/check_layers.py [src/veridl]

Every directory directly under src/veridl/ is a layer. From low to high:

    util, calculus, vjp, hlo, kernels, graph, prims, net, data, train, export

A file may include headers of its own layer and of any lower one, except data, which depends on util only
(the datasets know nothing of networks). A file in a directory not listed here is an error too (add the new
layer to LAYERS). Only quoted includes of "veridl/..." count. Exits 1 naming every offending file:line,
0 when the layering holds. CMakeLists.txt links one static library per layer in the same direction and runs
this script as the LayerDependencies test.
"""
import pathlib
import re
import sys

LAYERS = ["util", "calculus", "vjp", "hlo", "kernels", "graph", "prims", "net", "data", "train", "export"]
RANK = {name: i for i, name in enumerate(LAYERS)}
# Layers that may include less than "everything lower" (besides themselves).
RESTRICTED = {"data": {"util"}}

INCLUDE = re.compile(r'^\s*#\s*include\s*"veridl/([^/"]+)/[^"]*"')


def allowed(layer):
    if layer in RESTRICTED:
        return RESTRICTED[layer] | {layer}
    return {name for name in LAYERS if RANK[name] <= RANK[layer]}


def main(argv):
    root = pathlib.Path(argv[1] if len(argv) > 1 else pathlib.Path(__file__).resolve().parent.parent / "src" / "veridl")
    if not root.is_dir():
        print(f"check_layers: {root} is not a directory", file=sys.stderr)
        return 2
    errors = []
    files = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        layer = rel.parts[0] if len(rel.parts) > 1 else None
        if layer not in RANK:
            errors.append(f"{path}: not in a known layer directory ({', '.join(LAYERS)}); add it to "
                          f"scripts/check_layers.py")
            continue
        files += 1
        ok = allowed(layer)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(lines, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target = m.group(1)
            if target not in RANK:
                errors.append(f"{path}:{n}: includes veridl/{target}/, which is not a known layer")
            elif target not in ok:
                errors.append(f"{path}:{n}: layer '{layer}' includes a header of layer '{target}' "
                              f"(allowed: {', '.join(sorted(ok, key=RANK.get))})")
    for e in errors:
        print(e)
    if errors:
        print(f"check_layers: {len(errors)} layering violation(s) in {root}")
        return 1
    print(f"check_layers: {files} files, layering holds ({' < '.join(LAYERS)}; data: util only)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
