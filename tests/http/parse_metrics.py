"""Reads Prometheus text on stdin with prometheus_client's own parser and
prints one line per sample: name, labels as k=v joined by commas, value.
tests/http/main.rs compares these with what stats and stats-tube say."""
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}\t{labels}\t{s.value!r}")
