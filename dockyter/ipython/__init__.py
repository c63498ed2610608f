"""The IPython face: the only package that imports IPython.

``extension``     load and unload on a shell, leaving no trace
``magics``        :class:`~dockyter.ipython.magics.DockyterMagics`: thin parsers over the core
``cellline``      what a ``%%docker`` line asks for besides the docker arguments
``completion``    tab completion of the magic lines (IPython custom completers)
``redirect``      ``!cmd``, ``x = !cmd``, ``!!cmd`` and ``%sx`` into containers, and back
``sessionmagic``  ``%docker_session``'s actions
``tables``        the tables the magics show: HTML in a notebook, text in a terminal

May import: IPython and anything of the client side (:mod:`dockyter.core` and below). Nothing
outside this package imports it, except ``dockyter.load_ipython_extension``.
"""
