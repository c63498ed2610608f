"""What both ends of the wire agree on: the kernel's extension and ``dockyter-server``.

``contract``         exit codes, the control timeout, the default shell, the streaming media type,
                     container names, labels and owners, the one ``docker run`` argv and the limits
                     a server adds
``dockerargs``       ``[DOCKER ARGS...] IMAGE`` split as ``docker run`` itself would
``shellchars``       each character of a line as a shell reads it: quoted, escaped or plain
``sessionprotocol``  the line a session's bash reads per cell, and the frames that end it
``waiter``           the shell that waits in a prestarted container for its one command, and
                     which lines cannot wait (they run cold)
``enginesocket``     short questions to the Docker Engine API on its unix socket, no CLI process
``pull``             pulling an image with progress (the engine's API, else ``docker pull``)
``images``           image names as the engine writes them, and the kernel's cache of them
``labelled``         containers found by a label, and its value on each, as docker and podman both answer
``outfolder``        reading a run's ``$DOCKYTER_OUT`` folder safely, within limits; printable names
``outfiles``         what a file of it is (media types), and its ``file`` events in the API's stream

May import: the standard library only (tests/test_imports.py checks it). The server imports
nothing else from the client side.
"""
