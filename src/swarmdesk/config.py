"""One validated Settings object, built lazily from the environment (prefix ``SWARMDESK_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-insecure-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWARMDESK_", env_file=None, extra="ignore")

    env: Literal["dev", "test", "production"] = "dev"
    data_dir: Path = Path("./swarmdesk-data")
    # Empty means embedded SQLite under data_dir.
    database_url: str = ""
    redis_url: str = ""
    # Namespace of every Redis key and channel: processes that share it form one deployment.
    redis_prefix: str = Field(default="swarmdesk", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    # Connections per Redis client pool; at the limit a command waits for a free one.
    redis_max_connections: int = Field(default=100, ge=2)
    secret_key: str = DEV_SECRET
    base_url: str = "http://127.0.0.1:8000"

    # Requests
    max_body_bytes: int = 10 * 1024 * 1024
    api_page_size_max: int = 200

    # Jobs
    run_worker: bool = True
    worker_batch_size: int = 100
    worker_poll_interval: float = 0.5
    job_lease_seconds: int = 120
    job_backoff_base: float = 2.0
    job_backoff_max: float = 3600.0

    # Real time
    event_log_size: int = 50_000
    queue_ttl_seconds: int = 600

    # Webhooks / outbound HTTP
    webhook_timeout: float = 10.0

    # Sessions and passwords
    session_days: int = 14
    customer_session_days: int = 30
    argon2_time_cost: int = 3
    argon2_memory_cost: int = 65536

    # SQLite
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"

    log_level: str = "INFO"
    log_json: bool = True

    attachments_dir_name: str = "attachments"
    max_attachment_bytes: int = Field(default=25 * 1024 * 1024)

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.env == "production" and (self.secret_key == DEV_SECRET or len(self.secret_key) < 32):
            raise ValueError("SWARMDESK_SECRET_KEY must be set to a random value of 32+ characters in production")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+asyncpg://" + url.split("://", 1)[1]
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'swarmdesk.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def attachments_dir(self) -> Path:
        return self.data_dir / self.attachments_dir_name


@lru_cache
def get_settings() -> Settings:
    return Settings()
