"""The HTTP face of ``dockyter-server``: the application, its routes, and serving it.

``app``            :func:`~dockyter.server.http.app.create_app`: the parts made once, the routes, the lifespan
``appstate``       what the routes read from the application's state, typed; the detached clean-ups
``executors``      the seam: what the routes need of an executor and a run, and the ``executor`` setting's choice
``routes``         ``/health``, ``/execute``, ``/executions`` (an APIRouter)
``sessionroutes``  the ``/sessions`` endpoints (an APIRouter, included when the server has sessions)
``answers``        a run answered as an NDJSON stream or one JSON reply; the client's leaving stops it
``errorhandlers``  every error answer as one line: one handler for the server's own errors
``models``         the request and reply bodies of docs/api.md, as /openapi.json publishes them
``auth``           who is calling (the ``caller`` dependency): the server's tokens, compared in constant time,
                   or a JupyterHub user's, with what their groups grant
``hubidentity``    whose a JupyterHub token is, asked of the hub (auth jupyterhub), cached by digest
``middleware``     the request-size cap (413), before anything is parsed
``connections``    connections capped, each request due within its deadlines (uvicorn's h11 protocol)
``serve``          uvicorn, stopping every run before shutting down; the JSON log lines

May import: FastAPI, starlette, pydantic, uvicorn, h11, and every other part of the server.
Nothing else in the server imports this package.
"""
