"""Envelope errors pyx12 finds, file by file, as JSON on stdout.

Uses pyx12's own envelope layer (pyx12.x12file.X12Reader: ISA/IEA, GS/GE,
ST/SE control numbers, counts, trailers, duplicates) and not its TR3 maps,
so it also works for guides pyx12 has no map for, and TR3 content errors
(segment and element level) are left out. Output:
{"file": {"fatal": "message"} | {"errors": [["isa"|"gs"|"st", code], ...]}}
"""
import json
import sys

import pyx12.errors
import pyx12.x12file

out = {}
for path in sys.argv[1:]:
    try:
        with open(path, encoding="ascii", errors="strict") as f:
            reader = pyx12.x12file.X12Reader(f)
            errors = []
            for _seg in reader:
                errors.extend(reader.pop_errors())
            reader.cleanup()
            errors.extend(reader.pop_errors())
        out[path] = {"errors": [[e[0], e[1]] for e in errors if e[0] in ("isa", "gs", "st")]}
    except (pyx12.errors.X12Error, UnicodeDecodeError, IndexError, ValueError) as e:
        out[path] = {"fatal": str(e)}
json.dump(out, sys.stdout)
