"""The HTTP API backend: a Dockyter service (``dockyter-server``, or any server of the original contract).

``apibackend``     :class:`~dockyter.backends.api.apibackend.APIBackend`: settings, transport, status, description
``call``           one ``POST /execute`` (or a session's): the stream into the sink, the cancel
``remotesession``  one session on the server: start, run, delete
``replies``        the server's answers and transport failures, in one line each
``credential``     which token is sent: the user's own, else JupyterHub's (to the site profile's api_url only)

The only modules that import ``requests``. May import: :mod:`dockyter.backends.base` and
``settings``, :mod:`dockyter.wire`, :mod:`dockyter.errors`, :mod:`dockyter.output`.
"""
