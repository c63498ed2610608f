"""A real JupyterHub, its proxy, single-user servers and kernels, and a browser: see conftest.py."""
