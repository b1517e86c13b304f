"""Parse Prometheus text exposition from stdin with the reference parser
(prometheus_client) and print the families as JSON:
{name: {"type": ..., "help": ..., "samples": [[sample_name, labels, value], ...]}}.
Exits non-zero (with the parser's error) when the text does not parse."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

families = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    if fam.name in families:
        sys.exit(f"family {fam.name} appears twice")
    families[fam.name] = {
        "type": fam.type,
        "help": fam.documentation,
        "samples": [
            [s.name, s.labels, s.value if math.isfinite(s.value) else str(s.value)]
            for s in fam.samples
        ],
    }
json.dump(families, sys.stdout)
