"""Authlib's OpenID Connect client, imported without its httpx notice.

Authlib 1.9 warns on import that its client will move from httpx to httpx2. The client
works on the locked httpx, and the notice must not reach a user's first command
(``newsletter --help`` loads the console), so this one message is filtered here, where
Authlib is imported, for every entry point (CLI, web server, tests).
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.starlette_client import OAuth, OAuthError

__all__ = ["OAuth", "OAuthError"]
