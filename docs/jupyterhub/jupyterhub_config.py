# What a JupyterHub (5 or newer) needs for Dockyter: load it from your own jupyterhub_config.py,
# after your authenticator and spawner, which it leaves alone:
#
#     load_subconfig("/etc/jupyterhub/dockyter.py")   # this file, copied there
#
# Every kernel loads Dockyter through the site-wide IPython profile, not through this file: copy
# profile_default/ipython_config.py to etc/ipython/ipython_config.py under the prefix of the Python
# environment that runs the single-user servers (`python -c 'import sys; print(sys.prefix)'` with
# that environment's python), or to /etc/ipython/ipython_config.py for every Python on the machine
# or in the single-user image. IPython reads both for every kernel, before the user's own profile.
#
# Hub users reach dockyter-server as the hub service "dockyter": each user may access it, and
# the API token that the hub gives each single-user server ($JUPYTERHUB_API_TOKEN) carries that
# access. Asked with that token, the hub's `GET /hub/api/user` names the user and their groups.

c = get_config()  # noqa: F821 - JupyterHub provides get_config() to the files it reads

# Single-user servers open JupyterLab.
c.Spawner.default_url = "/lab"

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
