"""The local container CLI backend (docker, podman, ``sudo docker``).

``dockerbackend``  :class:`~dockyter.backends.docker.dockerbackend.DockerBackend`: one ``docker run`` per request, the stop ladder
``sessionshell``   one session: ``docker run -i`` with a bash in it, fed one line per cell
``cli``            the short CLI commands (kill, rm, exec, ps, stats) both run
``flavour``        Docker's CLI or podman's, and what the backend does differently for podman
``prestart``       the prestarted containers, by line: taken, filled, let go when idle
``waiting``        one prestarted container: its ``docker run -i``, ready or not; the frames that end its run
``imageids``       which image a tag names now, and which one a container was made from
``imagefacts``     what a run's receipt says of its image (digest) and engine (runtime, node)
``starthold``      the CLI's own complaint when a container does not start, held back so it is said once

May import: :mod:`dockyter.backends.base` and ``settings``, :mod:`dockyter.wire`,
:mod:`dockyter.errors`, :mod:`dockyter.output`, :mod:`dockyter.lifecycle`, :mod:`dockyter.receipts`,
:mod:`dockyter.files.runfolder`.
"""
