"""What the staff chat reads when an alert fires or resolves, one Go template for both engines:
Alertmanager (the local stack, infra/monitoring.py) and Grafana (compose, its provisioned
message template). Both render it with Alertmanager's data (.Alerts.Firing, .Labels,
.Annotations, .StartsAt, .EndsAt) and its functions.

A firing alert shows its summary (the measured value) and what to do. A resolved one shows
when it fired and when it resolved, and the labels that tell which instance it was, but no
summary: the engines send the annotations of the last evaluation that fired, so its value
would be the one from before the fault ended.

The text has no `$`: Grafana would expand it as an environment variable in the provisioning
file."""

from __future__ import annotations

# Labels every alert has, or that an engine adds: not what tells two alerts of a rule apart.
_COMMON_LABELS = ("alertname", "severity", "grafana_folder")
_DISTINCT = "and " + " ".join(f'(ne .Name "{name}")' for name in _COMMON_LABELS)
_TIME = "2006-01-02 15:04:05 MST"

MESSAGE = (
    "{{ range .Alerts.Firing }}[FIRING] {{ .Labels.alertname }} ({{ .Labels.severity }})\n"
    "{{ .Annotations.summary }}\n"
    "What to do: {{ .Annotations.runbook }}\n\n"
    "{{ end }}"
    "{{ range .Alerts.Resolved }}[RESOLVED] {{ .Labels.alertname }} ({{ .Labels.severity }})"
    "{{ range .Labels.SortedPairs }}"
    f"{{{{ if {_DISTINCT} }}}} {{{{ .Name }}}}={{{{ .Value }}}}{{{{ end }}}}"
    "{{ end }}\n"
    f'Resolved at {{{{ .EndsAt.Format "{_TIME}" }}}}; it fired at '
    f'{{{{ .StartsAt.Format "{_TIME}" }}}}.\n\n'
    "{{ end }}"
)

# Grafana: a named template in the provisioning file, which the contact point's message uses.
TEMPLATE_NAME = "botstack.message"
GRAFANA_TEMPLATE = f'{{{{ define "{TEMPLATE_NAME}" }}}}{MESSAGE}{{{{ end }}}}'
GRAFANA_MESSAGE = f'{{{{ template "{TEMPLATE_NAME}" . }}}}'
