"""``web.auth``: the login and API token the status table needs off loopback."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta

from pydantic import Field, SecretStr, model_validator

from tracker.config_types import Duration, Section

_PASSWORD_HASH = re.compile(
    r"^scrypt\$\d{1,8}\$\d{1,3}\$\d{1,3}\$[A-Za-z0-9+/=_-]+\$[A-Za-z0-9+/=_-]+$"
    r"|^pbkdf2_sha256\$\d{1,8}\$[^$]+\$[A-Za-z0-9+/=]+$"
)
MIN_API_TOKEN_LENGTH = 16
MIN_SESSION_SECRET_LENGTH = 32


class WebAuthConfig(Section):
    """Who may use the status table, its API and ``/metrics`` (required off loopback)."""

    api_token: SecretStr = Field(
        description="Bearer token for /api/*, /export.csv and /metrics "
        "(TRACKER_WEB__AUTH__API_TOKEN)."
    )
    username: str = Field(description="Login name for the pages.")
    password_hash: SecretStr | None = Field(
        None,
        description="scrypt$... from `python -m tracker.web.hash_password` (or Django's "
        "pbkdf2_sha256$...). Empty: password.",
    )
    password: SecretStr | None = Field(
        None,
        description="The login password in plain text, only from the environment "
        "(TRACKER_WEB__AUTH__PASSWORD); hashed in memory at start.",
    )
    session_secret: SecretStr = Field(
        description="Signs session cookies and form tokens; at least 32 characters, the same "
        "on every replica (TRACKER_WEB__AUTH__SESSION_SECRET).",
    )
    session_lifetime: Duration = Field(timedelta(hours=12), description="How long a login lasts.")

    @model_validator(mode="after")
    def _usable(self) -> WebAuthConfig:
        if len(self.api_token.get_secret_value()) < MIN_API_TOKEN_LENGTH:
            raise ValueError(f"api_token must be at least {MIN_API_TOKEN_LENGTH} characters")
        if len(self.session_secret.get_secret_value()) < MIN_SESSION_SECRET_LENGTH:
            raise ValueError(
                f"session_secret must be at least {MIN_SESSION_SECRET_LENGTH} characters"
            )
        if (self.password_hash is None) == (self.password is None):
            raise ValueError(
                "set exactly one of password_hash (python -m tracker.web.hash_password) "
                "and password (TRACKER_WEB__AUTH__PASSWORD)"
            )
        if self.password_hash is not None and not _PASSWORD_HASH.match(
            self.password_hash.get_secret_value()
        ):
            raise ValueError(
                "password_hash is not scrypt$n$r$p$salt$key or pbkdf2_sha256$iterations$salt$key"
            )
        return self


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False
