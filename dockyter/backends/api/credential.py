"""Which bearer token the API backend sends, and how ``%docker_status`` names it without showing it.

In order:

1. the user's own token: ``Dockyter.api_token`` set anywhere, or ``$DOCKYTER_API_TOKEN`` (the
   trait's default);
2. inside a JupyterHub single-user server, the API token the hub gave that server,
   ``$JUPYTERHUB_API_TOKEN``: a ``dockyter-server`` run with ``auth = "jupyterhub"`` asks the hub
   whose it is. It is sent only to the ``api_url`` that the IPython configuration sets (the site
   profile a platform team places for every kernel; ``settings.site_api_url``), never to one that
   a project's ``dockyter.toml`` or a run-time change points elsewhere: the hub's token names the
   user to anyone who receives it;
3. none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..settings import APISettings

HUB_TOKEN_VARIABLE = "JUPYTERHUB_API_TOKEN"
HUB_USER_VARIABLE = "JUPYTERHUB_USER"

OWN = "own"
JUPYTERHUB = "jupyterhub"


@dataclass(frozen=True)
class Credential:
    """The token to send (empty: none), where it came from, and why the hub's was held back (if it was)."""

    token: str = ""
    source: str = ""  # OWN, JUPYTERHUB, or "" for none
    hub_user: str = ""  # the hub user the hub's token belongs to ($JUPYTERHUB_USER), as the server will see it
    withheld: str = ""  # why $JUPYTERHUB_API_TOKEN was not sent, when there is one

    @property
    def from_hub(self) -> bool:
        return self.source == JUPYTERHUB

    def describe(self) -> str:
        """The status row's words: "set", "from JupyterHub, user alice", "not set (...)"."""
        if self.source == OWN:
            return "set"
        if self.from_hub:
            return f"from JupyterHub, user {self.hub_user or '(unknown)'}"
        return f"not set ({self.withheld})" if self.withheld else "not set"

    def variable(self) -> str:
        """The environment variable a ``curl`` command should read the token from."""
        return HUB_TOKEN_VARIABLE if self.from_hub else "DOCKYTER_API_TOKEN"

    def hint(self) -> str:
        """What to do when the server refuses this credential, or asks for one."""
        if self.from_hub:
            return (
                'the server does not accept this JupyterHub\'s tokens: it must run with auth = "jupyterhub" '
                "and this hub's API URL (or set Dockyter.api_token)"
            )
        return "set Dockyter.api_token or $DOCKYTER_API_TOKEN"


def choose_credential(settings: APISettings, environ: Mapping[str, str] | None = None) -> Credential:
    """The credential for the next request (read at each use, as every setting is)."""
    environ = os.environ if environ is None else environ
    if settings.api_token:
        return Credential(settings.api_token, OWN)
    hub_token = environ.get(HUB_TOKEN_VARIABLE, "")
    if not hub_token:
        return Credential()
    site_url = same_url(settings.site_api_url)
    if not site_url:
        return Credential(withheld="JupyterHub's token is sent only to an api_url set in ipython_config.py")
    if same_url(settings.api_url) != site_url:
        return Credential(withheld=f"JupyterHub's token is sent only to {site_url}, the api_url of ipython_config.py")
    return Credential(hub_token, JUPYTERHUB, hub_user=environ.get(HUB_USER_VARIABLE, ""))


def same_url(url: str) -> str:
    """``url`` as compared: no surrounding space, no trailing slash."""
    return url.strip().rstrip("/")
