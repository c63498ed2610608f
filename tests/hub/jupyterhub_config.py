# The test hub: the recipe (docs/jupyterhub/jupyterhub_config.py, read unchanged) plus what only a
# test machine needs: loopback ports, files in the run's work folder, a shared-password login for
# the users alice and bob, and single-user servers as local processes of the test's own user.
#
# tests/hub/hubserver.py starts `jupyterhub -f` on this file with the variables below set.
import os

c = get_config()  # noqa: F821 - JupyterHub provides get_config() and load_subconfig()

load_subconfig(os.environ["DOCKYTER_HUB_RECIPE"])  # noqa: F821

work = os.environ["DOCKYTER_HUB_WORK"]
environment = os.environ["DOCKYTER_HUB_SINGLEUSER_PREFIX"]

# Public (proxy), hub and proxy-API ports, all on loopback.
c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ['DOCKYTER_HUB_PUBLIC_PORT']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ['DOCKYTER_HUB_PORT']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['DOCKYTER_HUB_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [os.environ["DOCKYTER_HUB_PROXY_COMMAND"]]
# CONFIGPROXY_AUTH_TOKEN (set by the fixture) is the proxy's API token, read by the hub and the proxy.

# Every file of the hub in the run's work folder.
c.JupyterHub.db_url = f"sqlite:///{work}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{work}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = f"{work}/jupyterhub-proxy.pid"

# Users log in with one shared password; the groups are the hub's own.
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ["DOCKYTER_HUB_PASSWORD"]
c.Authenticator.allowed_users = {"alice", "bob"}
c.JupyterHub.load_groups = {"gpu": {"users": ["alice"]}, "students": {"users": ["bob"]}}

# The recipe's managed service, dockyter-server, run from the suite's environment with the recipe's
# own TOML file, on a free port; its environment adds what only this machine needs (settings of the
# environment win over the file's): the local images and registry, a name of its own on the shared
# engine, a short revocation bound to keep the suite short, and the run's mark.
(dockyter,) = [service for service in c.JupyterHub.services if service["name"] == "dockyter"]
service_url = f"http://127.0.0.1:{os.environ['DOCKYTER_HUB_SERVICE_PORT']}"
dockyter["url"] = service_url
dockyter["command"] = [os.environ["DOCKYTER_HUB_SERVER_COMMAND"], "--config", os.environ["DOCKYTER_HUB_SERVER_CONFIG"]]
dockyter["environment"] = {
    "DOCKYTER_HUB_RUN": os.environ["DOCKYTER_HUB_RUN"],
    **{name: value for name, value in os.environ.items() if name.startswith("DOCKYTER_SERVER_")},
}
c.Spawner.environment.update({"DOCKYTER_API_URL": service_url})

# Single-user servers: processes of this user, each with a home in the work folder, run by the
# Python environment whose etc/ipython/ holds the site-wide profile (tests/hub/singleuser.py).
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = f"{work}/home/{{username}}"
c.Spawner.cmd = [f"{environment}/bin/python", "-m", "jupyterhub.singleuser"]
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
# The mark by which the fixture finds every process of this hub at the end, kernels included.
c.Spawner.environment.update({"DOCKYTER_HUB_RUN": os.environ["DOCKYTER_HUB_RUN"]})
# Tests run as root (CI does): Jupyter's server refuses root unless told.
if os.getuid() == 0:
    c.Spawner.args = ["--allow-root"]
