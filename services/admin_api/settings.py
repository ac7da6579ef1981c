"""Settings of the admin API process (environment prefix ADMIN_API_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AdminApiSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ADMIN_API_", env_file=None, extra="ignore", frozen=True
    )

    # Loopback by default: publishing the admin API is the operator's explicit choice.
    host: str = "127.0.0.1"
    port: int = Field(27430, ge=1, le=65535)
    # Requests per minute one API key may make; short bursts up to `rate_burst` are allowed.
    rate_limit_per_minute: int = Field(600, ge=1)
    rate_burst: int = Field(60, ge=1)
    # Largest page a list endpoint returns.
    max_page_size: int = Field(200, ge=1, le=1000)
