"""The relying parties and users that the provider tests register."""

from __future__ import annotations

from .harness import OidcClient, OidcUser

# Nothing listens here: the login flow stops at the redirect, before the relying party.
REDIRECT_URI = "http://127.0.0.1:9/sso/callback"
BASIC_CLIENT = OidcClient(
    client_id="kai-basic",
    client_secret="basic-secret",
    redirect_uris=(REDIRECT_URI,),
    token_endpoint_auth_method="client_secret_basic",
)
POST_CLIENT = OidcClient(
    client_id="kai-post",
    client_secret="post-secret",
    redirect_uris=(REDIRECT_URI,),
    token_endpoint_auth_method="client_secret_post",
)
ANNA = OidcUser(sub="anna-7f3c", email="anna@tiles.example", name="Anna Rossi")
BRUNO = OidcUser(
    sub="bruno-21aa", email="bruno@stone.example", name="Bruno Keller", email_verified=False
)
