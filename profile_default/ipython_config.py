# Dockyter in every kernel, with no notebook code: an IPython profile for JupyterHub admins.
#
# Copy this file to one of these places (IPython reads all that exist; later ones win):
#
#   /etc/ipython/ipython_config.py                 every kernel on the machine or image
#   <sys.prefix>/etc/ipython/ipython_config.py     every kernel of one Python environment
#   ~/.ipython/profile_default/ipython_config.py   one user (or $IPYTHONDIR/profile_default/)
#
# Every kernel then starts with the Dockyter magics loaded and these settings in force.
# Precedence, lowest first: Dockyter's defaults < this file < the user's dockyter.toml
# < what the user changes at run time (%config Dockyter.x = ..., %docker, %docker_profile).
# `%docker_config` in a notebook shows where each value came from; docs/configuration.md
# lists every setting.

c = get_config()  # noqa: F821 - IPython provides get_config() to the files it reads

# Load the extension. `append` keeps the extensions that other config files load.
c.InteractiveShellApp.extensions.append("dockyter")

# The image and docker arguments that a bare `%%docker` line and `!` (after %docker_on) use.
c.Dockyter.default_args = "-v /srv/data:/data:ro -w /data python:3.12-slim"

# Stop any container after an hour; a user can still pass --timeout to one cell.
c.Dockyter.timeout = 3600.0

# The container CLI; for example ["podman"] on hosts without Docker.
c.Dockyter.docker_command = ["docker"]

# Untrusted users should not reach a container engine at all: give them the API backend of a
# dockyter-server run by the platform team instead (see docs/api.md), and put the token in the
# environment of the user's server (for example c.Spawner.environment in jupyterhub_config.py,
# as DOCKYTER_API_TOKEN), never in this file, which every user can read.
#
# c.Dockyter.backend = "api"
# c.Dockyter.api_url = "https://dockyter.example.org"
