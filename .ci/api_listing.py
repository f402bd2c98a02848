#!/usr/bin/env python3
"""Prints the public API of one crate from its rustdoc JSON (`cargo rustdoc -- --output-format json`).

One line per public item, sorted: modules, types, functions, constants, macros, re-exports (`use`),
and for types and traits their public fields, variants, inherent methods, associated items and the
traits they implement (auto traits and blanket impls left out). Signatures are not listed, only
names: the listing answers "was something public added, removed or renamed?", which a reviewer then
reads in the diff. Usage: api_listing.py CRATE.json
"""
import json
import sys


def main(path):
    doc = json.load(open(path))
    index = doc["index"]
    out = set()

    def item(i):
        return index.get(str(i)) if not isinstance(i, str) else index.get(i)

    def kind_of(it):
        inner = it.get("inner", {})
        return next(iter(inner)) if isinstance(inner, dict) and inner else str(inner)

    def type_name(ty):
        """A short name of a type, for trait impls and use targets."""
        if not isinstance(ty, dict):
            return str(ty)
        if "resolved_path" in ty:
            p = ty["resolved_path"]
            return p.get("path") or p.get("name") or "?"
        if "primitive" in ty:
            return ty["primitive"]
        if "borrowed_ref" in ty:
            return "&" + type_name(ty["borrowed_ref"]["type"])
        if "generic" in ty:
            return ty["generic"]
        return next(iter(ty), "?")

    def members(it, path, kind):
        inner = it["inner"][kind]
        # fields and variants
        if kind == "struct":
            k = inner.get("kind", {})
            if isinstance(k, dict):
                if "plain" in k:
                    for f in k["plain"].get("fields", []):
                        fi = item(f)
                        if fi and fi.get("visibility") == "public":
                            out.add(f"field {path}.{fi['name']}")
                elif "tuple" in k:
                    for n, f in enumerate(k["tuple"]):
                        fi = item(f) if f is not None else None
                        if fi and fi.get("visibility") == "public":
                            out.add(f"field {path}.{n}")
        if kind == "enum":
            for v in inner.get("variants", []):
                vi = item(v)
                if vi:
                    out.add(f"variant {path}::{vi['name']}")
        if kind == "trait":
            for t in inner.get("items", []):
                ti = item(t)
                if ti:
                    out.add(f"trait-item {path}::{ti['name']}")
        for imp in inner.get("impls", []):
            ii = item(imp)
            if not ii:
                continue
            im = ii["inner"]["impl"]
            if im.get("is_synthetic") or im.get("blanket_impl") is not None:
                continue
            if im.get("trait") is None:
                for m in im.get("items", []):
                    mi = item(m)
                    if mi and mi.get("visibility") == "public" and mi.get("name"):
                        out.add(f"{kind_of(mi)} {path}::{mi['name']}")
            else:
                t = im["trait"]
                out.add(f"impl {t.get('path') or t.get('name')} for {path}")

    def walk(mod_id, prefix):
        it = item(mod_id)
        for child in it["inner"]["module"]["items"]:
            ci = item(child)
            if ci is None:
                continue
            kind = kind_of(ci)
            if kind == "use":
                u = ci["inner"]["use"]
                target = item(u["id"]) if u.get("id") is not None else None
                if ci.get("visibility") != "public":
                    continue
                if target is None or u.get("is_glob") or target.get("crate_id", 0) != 0:
                    # a re-export of another crate's item (or a glob): listed as such
                    name = prefix + "::" + (u["name"] if not u.get("is_glob") else "*")
                    out.add(f"use {name} = {u['source']}")
                    continue
                # a re-export of this crate's item (often from a private module): the item, at this path
                ci, child = dict(target, name=u["name"], visibility="public"), u["id"]
                kind = kind_of(ci)
            if kind == "impl":
                continue
            if ci.get("visibility") != "public" and kind != "macro":
                continue
            name = ci.get("name")
            if not name:
                continue
            path = f"{prefix}::{name}"
            out.add(f"{kind} {path}")
            if kind == "module" and child not in seen:
                seen.add(child)
                walk(child, path)
            elif kind in ("struct", "enum", "union", "trait"):
                members(ci, path, kind)

    seen = set()
    root = item(doc["root"])
    walk(doc["root"], root["name"])
    for line in sorted(out):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1])
