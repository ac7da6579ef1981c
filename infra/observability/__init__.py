"""Alerts and dashboards as code: one catalogue (alerts.py) from which the Prometheus rule
files and Grafana's alerting provisioning are generated and committed (python -m
infra.observability), as the monitoring mixins do."""
