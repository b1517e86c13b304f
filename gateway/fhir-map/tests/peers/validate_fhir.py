#!/usr/bin/env python3
"""Validate FHIR R4 transaction Bundles with an independent validator.

Usage: validate_fhir.py FILE.json... (or a directory of *.json)

Each file must be a Bundle that `fhir.resources` (its R4B models, pydantic
strict types: ids, codes, uris, dates with real calendar days, required
elements, choice types) accepts. On top of the model checks, for a
transaction: unique fullUrls, a request on every entry, and every literal
reference (Type/id or urn:uuid) resolving to an entry of the same Bundle.

Prints one line per file and a closing "N passed, M failed"; exits 1 on any failure.
"""
import json
import pathlib
import sys

from fhir.resources.R4B.bundle import Bundle

from report import report


def references(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def check(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    Bundle.model_validate(data)
    if data.get("type") != "transaction":
        return
    entries = data.get("entry", [])
    full_urls = [e.get("fullUrl") for e in entries]
    if len(set(full_urls)) != len(full_urls):
        raise ValueError("duplicate fullUrl")
    known = set(full_urls)
    for e in entries:
        if "request" not in e:
            raise ValueError("entry without request")
        res = e["resource"]
        if "id" in res:
            known.add(f"{res['resourceType']}/{res['id']}")
    for e in entries:
        for ref in references(e["resource"]):
            if ref not in known and not ref.startswith("#"):
                # A DocumentReference addendum (PUT mode) may point at its
                # original, which an earlier message created.
                if e["resource"]["resourceType"] == "DocumentReference" and ref.startswith("DocumentReference/"):
                    continue
                raise ValueError(f"unresolved reference {ref} in {e['resource']['resourceType']}")


def main(args):
    files = []
    for a in args:
        p = pathlib.Path(a)
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    return report(check, files, name=lambda f: f.name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
