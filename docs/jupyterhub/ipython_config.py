# The site-wide IPython profile of the JupyterHub recipe (docs/jupyterhub.md): Dockyter in every
# kernel, on the API backend of the hub service "dockyter", with no token to hand out.
#
# Copy it to etc/ipython/ipython_config.py under the prefix of the Python environment that runs
# the single-user servers (`python -c 'import sys; print(sys.prefix)'` with that environment's
# python), or to /etc/ipython/ipython_config.py on the machine or in the single-user image.
# IPython reads both for every kernel, before the user's own profile.
import os

c = get_config()  # noqa: F821 - IPython provides get_config() to the files it reads

# Load the extension in every kernel. `append` keeps the extensions that other files load.
c.InteractiveShellApp.extensions.append("dockyter")

# Containers run on dockyter-server, never on an engine the kernel could reach itself. The hub's
# configuration says where the service is, in every single-user server's environment
# (DOCKYTER_API_URL, set in jupyterhub_config.py): one URL, whatever the spawner.
c.Dockyter.backend = "api"
c.Dockyter.api_url = os.environ.get("DOCKYTER_API_URL", "")
# No token here: the kernel sends the hub's token for its server ($JUPYTERHUB_API_TOKEN), and the
# service asks the hub whose it is. It is sent only to this api_url.

# The image a bare `%%docker` cell and `!` (after %docker_on) use; it must be one the server allows.
c.Dockyter.default_args = "python:3.12-slim"

# Stop any container after an hour; a user can still pass --timeout to one cell (the server's
# max_timeout bounds both).
c.Dockyter.timeout = 3600.0
