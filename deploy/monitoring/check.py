#!/usr/bin/env python3
"""Checks the monitoring files against each other and against the code (deploy/check runs it,
with the rendered deploy/monitoring/k8s manifests on standard input):

- every metric the rules and the dashboard read is one the code records (a `counter!`,
  `gauge!` or `histogram!` in crates/shopnow/src), or a recording rule of the rules file;
- the dashboard's panels each have a title, a description and queries;
- the PrometheusRule of the Kubernetes component holds exactly the rules file's groups;
- the ServiceMonitor selects the Service by its labels and scrapes a port it names.
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/monitoring/rules/shopnow.yml"
DASHBOARD = ROOT / "deploy/monitoring/grafana/dashboards/shopnow.json"
# Series Prometheus makes itself.
BUILTIN = {"up", "ALERTS", "ALERTS_FOR_STATE"}
# PromQL words that look like metric names.
PROMQL = {"sum", "by", "rate", "increase", "histogram_quantile", "max", "min", "or", "and", "bool",
          "vector", "scalar", "log10", "round", "clamp_min", "offset", "on", "le", "without"}


def fail(message):
    print(f"monitoring check: {message}", file=sys.stderr)
    sys.exit(1)


def recorded_by_code():
    names = set()
    for source in (ROOT / "crates/shopnow/src").rglob("*.rs"):
        for kind, name in re.findall(r'(counter|gauge|histogram)!\(\s*"([a-z_]+)"', source.read_text()):
            names.add(name)
            if kind == "histogram":
                names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return names


def metrics_in(expr):
    """Metric names of a PromQL expression (label values and strings removed first)."""
    expr = re.sub(r'"[^"]*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {n for n in names if n not in PROMQL and not re.fullmatch(r"\d.*", n)}


rules = yaml.safe_load(RULES.read_text())
known = recorded_by_code() | BUILTIN
recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
known |= recorded
for group in rules["groups"]:
    for rule in group["rules"]:
        unknown = metrics_in(rule["expr"]) - known
        if unknown:
            fail(f"rule {rule.get('record') or rule.get('alert')} reads unknown metrics {sorted(unknown)}")
        if "alert" in rule and not rule.get("annotations", {}).get("runbook"):
            fail(f"alert {rule['alert']} has no runbook")

dashboard = json.loads(DASHBOARD.read_text())
for panel in dashboard["panels"]:
    if panel["type"] == "row":
        continue
    if not panel.get("title") or not panel.get("description") or not panel.get("targets"):
        fail(f"panel {panel.get('id')} needs a title, a description and queries")
    for target in panel["targets"]:
        unknown = metrics_in(target["expr"]) - known
        if unknown:
            fail(f"panel {panel['title']!r} reads unknown metrics {sorted(unknown)}")

documents = [d for d in yaml.safe_load_all(sys.stdin) if d]
by_kind = {}
for document in documents:
    by_kind.setdefault(document["kind"], []).append(document)
(rule_resource,) = by_kind["PrometheusRule"]
if rule_resource["spec"]["groups"] != rules["groups"]:
    fail("deploy/k8s/components/monitoring/prometheusrule.yaml differs from the rules file; copy the groups again")
(monitor,) = by_kind["ServiceMonitor"]
(service,) = [s for s in by_kind["Service"] if s["metadata"]["name"] == "shopnow"]
selector = monitor["spec"]["selector"]["matchLabels"]
if any(service["metadata"].get("labels", {}).get(k) != v for k, v in selector.items()):
    fail(f"the ServiceMonitor selects {selector}, which the Service's labels do not carry")
ports = {p["name"] for p in service["spec"]["ports"]}
for endpoint in monitor["spec"]["endpoints"]:
    if endpoint["port"] not in ports:
        fail(f"the ServiceMonitor scrapes port {endpoint['port']!r}; the Service has {sorted(ports)}")
print(f"monitoring check: {len(recorded)} recording rules, "
      f"{sum('alert' in r for g in rules['groups'] for r in g['rules'])} alerts, "
      f"{sum(p['type'] != 'row' for p in dashboard['panels'])} panels agree")
