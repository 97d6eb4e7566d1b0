#!/usr/bin/env python3
"""Checks the link-level dependency direction of the layer libraries: no object of a layer library uses a symbol
that only a library it does not link (a higher layer) defines.

    python3 scripts/check_layer_links.py NAME=ARCHIVE=DEP,DEP ...

CMakeLists.txt passes one argument per layer library (veridl_layer), with the layers that library links; the
allowed set is their transitive closure. Linking the static libraries in order catches a call into a higher layer
only when nothing else pulled the defining object in, so this reads the archives with `nm` instead: every
undefined symbol of a layer must be defined by the layer itself, by a layer it links, or by no layer at all (the
C++ runtime, fmt, ...). Exits 1 naming each offending object and symbol. The include-level check is
scripts/check_layers.py.
"""
import subprocess
import sys

DEFINED = set("TDBRWVuiGS")  # global definitions (lowercase = local, except u: unique global)


def symbols(archive):
    """(defined global symbols, {object: undefined symbols}) of a static library."""
    out = subprocess.run(["nm", "-P", "-A", archive], check=True, capture_output=True, text=True).stdout
    defined, undefined = set(), {}
    for line in out.splitlines():
        where, _, rest = line.partition(": ")
        fields = rest.split()
        if len(fields) < 2:
            continue
        name, kind = fields[0], fields[1]
        if kind == "U":
            obj = where[where.find("[") + 1:-1] if "[" in where else where
            undefined.setdefault(obj, set()).add(name)
        elif kind in DEFINED:
            defined.add(name)
    return defined, undefined


def demangle(name):
    try:
        return subprocess.run(["c++filt", name], check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return name


def main(argv):
    specs = {}
    for arg in argv[1:]:
        parts = arg.split("=")
        if len(parts) != 3:
            print(f"check_layer_links: bad argument '{arg}' (NAME=ARCHIVE=DEP,DEP)", file=sys.stderr)
            return 2
        specs[parts[0]] = (parts[1], [d for d in parts[2].split(",") if d])
    if not specs:
        print("check_layer_links: no layer libraries given", file=sys.stderr)
        return 2

    def closure(name, seen=None):
        seen = set() if seen is None else seen
        for d in specs[name][1]:
            if d not in seen:
                seen.add(d)
                closure(d, seen)
        return seen

    tables = {name: symbols(archive) for name, (archive, _) in specs.items()}
    errors = []
    for name in specs:
        ok = closure(name) | {name}
        visible = set().union(*(tables[n][0] for n in ok))
        elsewhere = {}
        for other in specs:
            if other not in ok:
                for s in tables[other][0]:
                    elsewhere.setdefault(s, other)
        for obj, undefined in sorted(tables[name][1].items()):
            for s in sorted(undefined - visible):
                if s in elsewhere:
                    errors.append(f"{name} ({obj}) uses {demangle(s)}, defined in {elsewhere[s]}, which {name} "
                                  f"does not link (links: {', '.join(sorted(ok - {name})) or 'nothing'})")
    for e in errors:
        print(e)
    if errors:
        print(f"check_layer_links: {len(errors)} use(s) of a layer the library does not link")
        return 1
    print(f"check_layer_links: {len(specs)} layer libraries, every symbol comes from the layer itself or below")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
