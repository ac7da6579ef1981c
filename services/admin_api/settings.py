"""Settings of the admin API process (environment prefix ADMIN_API_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from services.core.settings import settings_config


class AdminApiSettings(BaseSettings):
    model_config = settings_config("ADMIN_API_")

    # Loopback by default: publishing the admin API is the operator's explicit choice.
    host: str = "127.0.0.1"
    port: int = Field(27430, ge=1, le=65535)
    # Requests per minute one API key may make; short bursts up to `rate_burst` are allowed.
    rate_limit_per_minute: int = Field(600, ge=1)
    rate_burst: int = Field(60, ge=1)
    # Failed API key checks one client address may make: a burst, then per minute. Past that
    # its requests get 429 before any key is looked up.
    failed_auth_per_minute: int = Field(30, ge=1)
    failed_auth_burst: int = Field(20, ge=1)
    # Largest request body accepted (413 above it, before the body is read).
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # Largest page a list endpoint returns.
    max_page_size: int = Field(200, ge=1, le=1000)
