"""The HTTP face of ``dockyter-server``: the application, its routes, and serving it.

``app``            :func:`~dockyter.server.http.app.create_app`: the application over the policy and the executor
``sessionroutes``  the ``/sessions`` endpoints
``models``         the request and reply bodies of docs/api.md, as /openapi.json publishes them
``auth``           bearer tokens, compared in constant time
``middleware``     the request-size cap (413), before anything is parsed
``connections``    connections capped, each request due within its deadlines (uvicorn's h11 protocol)
``serve``          uvicorn, stopping every run before shutting down; the JSON log lines
``executors``      the seam: what the application needs of an executor, and the ``executor`` setting's choice

May import: FastAPI, starlette, pydantic, uvicorn, h11, and every other part of the server.
"""
