# For the single-user servers of the JupyterHub recipe (docs/jupyterhub.md), when the spawner stops
# them with SIGINT (LocalProcessSpawner and SimpleLocalProcessSpawner do): shut the kernels down.
#
# Copy it to etc/jupyter/jupyter_server_config.py under the prefix of the Python environment that
# runs the single-user servers, beside the IPython profile (or add these lines to the one there).
#
# Why: Jupyter Server installs its SIGINT handler only when its stdin is a terminal, which it never
# is under a hub. SIGINT is then a KeyboardInterrupt: the server exits at once without shutting its
# kernels down, and each kernel ends a second later through os._exit, so nothing in it gets to
# clean up. SIGTERM has a handler in every case, and shuts every kernel down first (Dockyter then
# ends the kernel's sessions and stops a running cell's container). DockerSpawner and KubeSpawner
# stop servers with SIGTERM already.
import os
import signal

c = get_config()  # noqa: F821 - Jupyter provides get_config() to the files it reads


def _stop_as_for_sigterm(signum: int, frame: object) -> None:
    os.kill(os.getpid(), signal.SIGTERM)


signal.signal(signal.SIGINT, _stop_as_for_sigterm)
