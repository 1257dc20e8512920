"""Who the Shopify sandbox lets in: its Admin API token, and tokens granted to the app.

A request must carry the store's static ``access_token`` or a token obtained with the
client-credentials grant (``POST /admin/oauth/access_token`` with the app's ``client_id`` and
``client_secret``), which expires after ``granted_token_lifetime`` seconds. The client secret
also signs the store's webhooks. :meth:`AccessTokens.revoke_token` answers 401 to every request
until :meth:`AccessTokens.restore_token`.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time

log = logging.getLogger(__name__)


class AccessTokens:
    """The tokens a store accepts, and the app credentials that obtain more of them."""

    def __init__(self, domain: str, access_token: str) -> None:
        self.domain = domain
        self.access_token = access_token
        # The app's credentials: the client-credentials grant and webhook signatures.
        self.client_id = f"sandbox-client-{domain.split('.', 1)[0]}"
        self.client_secret = f"sandbox-secret-{secrets.token_hex(8)}"
        self.granted_token_lifetime = 86399.0
        self.token_revoked = False
        self._granted: dict[str, float] = {}

    def grant_token(self, client_id: str, client_secret: str) -> str | None:
        """A new access token for the app's credentials (the client-credentials grant)."""
        if not (
            hmac.compare_digest(client_id.encode(), self.client_id.encode())
            and hmac.compare_digest(client_secret.encode(), self.client_secret.encode())
        ):
            return None
        token = f"shpat_granted_{secrets.token_hex(12)}"
        self._granted[token] = time.monotonic() + self.granted_token_lifetime
        return token

    def token_valid(self, token: str) -> bool:
        """The static token, or a granted one that has not expired or been revoked."""
        if self.token_revoked:
            return False
        if hmac.compare_digest(token.encode(), self.access_token.encode()):
            return True
        expires = self._granted.get(token)
        return expires is not None and time.monotonic() < expires

    def revoke_granted_tokens(self) -> None:
        self._granted.clear()

    def revoke_token(self) -> None:
        """The merchant uninstalled the app or rotated its token: every request gets 401.

        Unlike replacing ``access_token``, :meth:`restore_token` makes the same token valid
        again (the app reinstalled with it), so a daemon that was refused can carry on.
        """
        self.token_revoked = True
        log.info("sandbox %s: access token revoked", self.domain)

    def restore_token(self) -> None:
        self.token_revoked = False
        log.info("sandbox %s: access token valid again", self.domain)
