"""``dockyter-server``: the hardened, streaming reference server for the ``api`` backend.

It serves the HTTP contract of ``docs/api.md`` and runs every execution as one container
(or, on a Docker Swarm, one service), through the container CLI. One request goes
``http/`` (auth, body checks) -> ``policy/`` (a Plan, or a refusal) -> ``engine/`` or
``swarm/`` (create, check against the plan, start, stream) -> back to ``http/`` as NDJSON.

``__main__``      the ``dockyter-server`` command: read the settings, serve
``settings/``     every setting, read from flags, ``DOCKYTER_SERVER_*`` and a TOML file
``servererrors``  every error a request can meet, with the HTTP status and headers it becomes
``http/``         the FastAPI application, its routes, errors as answers, serving with uvicorn
``policy/``       what a request may ask for: the Plan, or a refusal that names the argument
``runs/``         what every run shares: its output queue and stop, the execution slots, the upkeep
``engine/``       executions on one container engine, and the check of what the engine made
``swarm/``        executions as services on a Docker Swarm
``sessions/``     warm containers whose shell keeps its state between commands

May import: from the client side only :mod:`dockyter.wire` (and ``dockyter.__version__``);
FastAPI, starlette, pydantic and uvicorn only in ``http/``. The parts import downwards:
``http/`` -> ``sessions/`` and ``swarm/`` -> ``engine/`` -> ``runs/`` and ``policy/`` ->
``settings/`` -> the leaf checks a setting is held to (``policy/allowlist``, ``registries``,
``engine/engineenv``, ``swarm/loopbackcheck``, ``swarmargs``: they import no setting) and
``servererrors``. A module that needs something of the one above it declares a Protocol where
it lives (an execution of its executor, a command of its session); tests/test_imports.py finds
no import circle. ``import dockyter`` stays free of FastAPI.
"""
