"""Authlib's OpenID Connect client, imported without its httpx notice.

Authlib 1.9 warns on import that its client will move from httpx to httpx2. The client
works on the locked httpx, and the notice must not reach a user's first command
(``newsletter --help`` loads the console), so this one message is filtered here, where
Authlib is imported, for every entry point (CLI, web server, tests).
"""

from __future__ import annotations

import warnings

# authlib.deprecate adds an "always" filter for its own warnings when imported; ours goes
# in front of it, for this one message only.
import authlib.deprecate  # noqa: F401

warnings.filterwarnings("ignore", message="The httpx module is deprecated")

from authlib.integrations.starlette_client import OAuth, OAuthError  # noqa: E402

__all__ = ["OAuth", "OAuthError"]
