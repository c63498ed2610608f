"""Running executions on one container engine, through its CLI (and its API socket, to read).

``engineexecutor``  the engine executor: admits, tracks and removes the containers of one server instance
``execution``       one container: pull, create, the check, start; its output streamed
``prestarted``      one prestarted container: an execution's, created, checked and started before its request
``prestartedrun``   an execution in a prestarted container: its command on stdin, its end in its frames
``prestartpool``    the prestarted containers by token and approved plan, within the operator's budget
``control``         the short CLI commands (kill, rm, ps, inspect) of every part of the server
``engineenv``       the environment of every CLI process: fixed at start-up, never the server's
``runtimes``        the OCI runtime of every container, checked with ``docker info`` at start-up
``enginekind``      Docker or podman (rootless or not), asked at start-up, and what that changes
``enginecheck``     the check of what the engine made, before it starts; 403 and an error log line
``expected``        the container a Plan and the server's own additions describe
``containercheck``  what of ``docker inspect`` is compared with it, and why
``podmaninspect``   podman's inspect of a container read as docker's, field by field
``pullerrors``      a failed pull in one line; the CLI's own pull lines taken off
``engineapi``       the Engine API read straight from its unix socket

May import: :mod:`dockyter.wire`, the settings, the policy's Plan, ``runs/`` and the errors.
"""
