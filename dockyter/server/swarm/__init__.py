"""The Swarm executor: one service per execution on a Docker Swarm (docs/scaling.md).

``swarmexecutor``   starts, polls, sweeps and removes the services of one server instance
``swarmexecution``  one execution: its service, its logs followed and streamed, its end
``swarmargs``       the request's docker run options as docker service create options
``swarmnetworks``   one internal overlay network per token, shared by its running executions
``swarmstate``      what the manager says of the instance's tasks, and which nodes are down
``swarmmounts``     the start-up warning about bind mounts on a cluster
``swarmcheck``      a service created with no replica: read back, checked, released
``servicecheck``    what of its spec is compared with the plan, and why
``swarmloopback``   the loopback check as a Swarm config (``swarm_isolation = "nodes"``)
``loopbackcheck``   building and checking the loopback check program (``loopback_only.c`` beside it)

May import: :mod:`dockyter.wire`, the settings, the policy's Plan and its ``mountspec`` (a
``--mount`` value written as the CLI reads it), ``engine/``, ``runs/`` and the errors.
"""
