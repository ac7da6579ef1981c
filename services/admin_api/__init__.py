"""The admin API: a FastAPI service for staff (API keys, roles, audit log, analytics, GDPR)."""
