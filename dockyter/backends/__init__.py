"""Backends: what runs a request in a container, chosen by name.

``registry``  name -> backend class, imported on first use (``requests`` only with ``api``)
``base``      the one interface every backend implements, and its request, result and session handle
``settings``  the typed settings a backend reads (the ``Dockyter`` core, or ``StaticSettings``)
``docker/``   the local container CLI: runs, sessions, the short CLI commands
``api/``      a Dockyter HTTP service: ``/execute`` calls, sessions, its answers in words

May import: :mod:`dockyter.wire`, :mod:`dockyter.errors`, :mod:`dockyter.output`,
:mod:`dockyter.receipts`, :mod:`dockyter.files` (a run's ``$DOCKYTER_OUT`` folder), and what is
below it (a backend package imports only ``base`` and ``settings`` of its parent). Never IPython,
traitlets, the core or the magics: a backend reads its settings through ``settings``' Protocols.
"""
