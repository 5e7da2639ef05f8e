"""infra/prometheus and infra/grafana: promtool checks the scrape configurations, the alert rules and
their unit tests, and the dashboard's queries (as recording rules); the dashboard is well-formed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.infra.infra_files import (
    DASHBOARD,
    PROMETHEUS,
    alert_rules,
    dashboard_expressions,
    grafana_to_promql,
    run_promtool,
)

REQUIRED_ALERTS = {
    # issue 9: TTFT p99, error rate, degrade level, unhealthy workers, push failures
    "SurgeTimeToFirstTokenP99High",
    "SurgeHTTPErrorRateHigh",
    "SurgeDegraded",
    "SurgeWorkerUnhealthy",
    "SurgeModelWithoutHealthyWorker",
    "SurgePushAuthErrors",
    "SurgePushFailureRateHigh",
}


def test_promtool_accepts_the_compose_scrape_config() -> None:
    result = run_promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_kubernetes_scrape_config() -> None:
    result = run_promtool("check", "config", "prometheus.k8s.yml")
    if "field kubernetes_sd_configs not found" in result.stdout + result.stderr:
        pytest.skip("this promtool was built without Kubernetes service discovery (Debian's is)")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules() -> None:
    result = run_promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    result = run_promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rules = [
        {"record": f"surge:dashboard_query_{index}", "expr": grafana_to_promql(expr)}
        for index, expr in enumerate(dashboard_expressions(dashboard))
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_cover_issue_9_and_say_what_is_wrong() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])


def test_every_alert_has_a_unit_test_or_is_simple() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    assert {
        "SurgePushAuthErrors",
        "SurgeModelWithoutHealthyWorker",
        "SurgeTimeToFirstTokenP99High",
        "SurgeHTTPErrorRateHigh",
    } <= tested


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    ids = []
    for panel in dashboard["panels"]:
        ids.append(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip()
            for variable in re.findall(r"\$(\w+)", target["expr"]):
                assert variable in variables or variable.startswith("__"), variable
    assert len(ids) == len(set(ids))
    # Panels do not overlap.
    cells = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))
