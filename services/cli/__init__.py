"""`botstack`, the operator's CLI: health, stats, inspect, maintenance, config, and the backup
and key commands under one roof. It parses and renders; what it runs lives in services.core
(SQL) and services.backup. No service imports it."""
