# What a JupyterHub (5 or newer) needs for Dockyter (docs/jupyterhub.md): load it from your own
# jupyterhub_config.py, after your authenticator and spawner, which it leaves alone:
#
#     load_subconfig("/etc/jupyterhub/dockyter.py")   # this file, copied there
#
# It runs dockyter-server as the hub's managed service "dockyter", lets every user access that
# service, and tells every single-user server where it is. The server knows each caller from the
# hub: the API token that the hub gives each single-user server ($JUPYTERHUB_API_TOKEN, which its
# kernels inherit and send) names the user and their groups when the server asks the hub's
# `GET /hub/api/user`. No token to make, hand out, rotate or revoke.
#
# Every kernel loads Dockyter through the site-wide IPython profile (ipython_config.py beside this
# file), not through this file.

c = get_config()  # noqa: F821 - JupyterHub provides get_config() to the files it reads

# Where dockyter-server listens: the hub checks it and the proxy routes /services/dockyter/ there,
# and kernels call it directly at this URL (DOCKYTER_API_URL below). With LocalProcessSpawner the
# kernels run on this machine; with DockerSpawner or KubeSpawner they must reach it over the
# network, so listen on an address they can reach and put that address here (docs/jupyterhub.md).
DOCKYTER_URL = "http://127.0.0.1:8010"

c.JupyterHub.services = [
    {
        "name": "dockyter",
        "url": DOCKYTER_URL,
        # A managed service: the hub starts it (and stops it when the hub stops), with
        # JUPYTERHUB_API_URL, JUPYTERHUB_API_TOKEN, JUPYTERHUB_SERVICE_NAME and
        # JUPYTERHUB_SERVICE_URL in its environment, from which the server learns which hub to ask,
        # its own name there and where to listen. Its settings are in the TOML file.
        "command": ["dockyter-server", "--config", "/etc/dockyter/server.toml"],
        # It drives the container engine, which is root on that host: if the hub runs as root, run
        # the service as a user of the docker group instead, e.g. "user": "dockyter".
    },
]

# Every user may access the service "dockyter" (the default "user" role is only "self").
c.JupyterHub.load_roles = [
    {
        "name": "user",
        "description": "Standard user privileges, and access to the dockyter service",
        "scopes": ["self", "access:services!service=dockyter"],
    },
]

# The single-user server's own token ($JUPYTERHUB_API_TOKEN), which its kernels see and send to
# dockyter-server: it may post the server's activity (JupyterHub requires that) and access the
# dockyter service, no more. JupyterHub's default "server" role also lets it access the user's
# own server, so that whoever holds it could run code there as the user; the service does not
# need that, and a single-user server works without it. The hub gives the token only the scopes
# its user holds, hence the role above.
c.Spawner.server_token_scopes = [
    "users:activity!user",
    "access:services!service=dockyter",
]

# Where kernels find the service: the site-wide IPython profile reads this variable.
c.Spawner.environment.update({"DOCKYTER_API_URL": DOCKYTER_URL})

# Single-user servers open JupyterLab.
c.Spawner.default_url = "/lab"
