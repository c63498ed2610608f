"""``dockyter-server``: the hardened, streaming reference server for the ``api`` backend.

It serves the HTTP contract of ``docs/api.md`` and runs every execution as one container
through the docker CLI. The pieces, one idea each:

* :mod:`.settings` -- every setting, read from flags, ``DOCKYTER_SERVER_*`` and a TOML file;
* :mod:`.allowlist` -- what an operator may allow: option names, host mounts, what never;
* :mod:`.policy` -- what a request may ask for (images, flags, mounts, shells);
* :mod:`.executor` -- running, streaming, limiting and always removing the containers;
* :mod:`.executors` -- the seam: what an executor offers, and the ``executor`` setting's choice;
* :mod:`.swarm` (with :mod:`.swarmargs`) -- the same, as one service per execution on a Docker Swarm;
* :mod:`.app` -- the FastAPI application (:func:`.app.create_app`): auth, negotiation, limits, logging;
* :mod:`.__main__` -- the ``dockyter-server`` command.

Only this subpackage imports FastAPI; ``import dockyter`` stays free of it.
"""
