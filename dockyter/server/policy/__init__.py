"""What a request may ask for: the policy over the parsed arguments, and the checks it is made of.

``requestpolicy``  :class:`~dockyter.server.policy.requestpolicy.Policy`: a request's arguments turned into a Plan, or refused
``plan``           the Plan: what the policy approved, all that the executors and the sessions take of a request
``allowlist``      what an operator may allow (option names, host mounts) and what never
``mountpath``      a bind source walked with lstat, never following links
``mountspec``      ``--mount`` values read and written as the docker CLI's CSV reader reads them
``hostview``       engine sockets and directories, pseudo file systems: what no mount may expose
``secretpaths``    the server's own secrets (token and config files, CLI credentials, keys)
``registries``     an image's registry as docker reads it: ``allowed_registries``
``groupgrants``    what a hub group's ``[groups.NAME]`` table grants, and the union a user of several gets
``textcheck``      control characters, NUL and lone surrogates refused in every text field

May import: the standard library, :mod:`dockyter.wire`, the errors, and (``requestpolicy`` only) the settings.
"""
