"""The IPython face: the only package that imports IPython.

``extension``     load and unload on a shell, leaving no trace
``magics``        :class:`~dockyter.ipython.magics.DockyterMagics`: thin parsers over the core
``grammar``       the shape of a magic's grammar table: parsing and usage come from it
``magiclines``    one grammar table per magic: options, verbs, words, help texts
``cellline``      what a ``%%docker`` line asks for besides the docker arguments
``completion``    tab completion of every magic line, read from the grammar tables
``redirect``      ``!cmd``, ``x = !cmd``, ``!!cmd`` and ``%sx`` into containers, and back
``expansion``     what IPython would have expanded on a magic line that one ``$NAME`` stopped
``sessionmagic``  ``%docker_session``'s verbs
``jobsmagic``     ``%%docker --bg`` and ``%docker_jobs``
``tables``        the tables the magics show: HTML in a notebook, text in a terminal

May import: IPython and anything of the client side (:mod:`dockyter.core` and below). Nothing
outside this package imports it, except ``dockyter.load_ipython_extension``.
"""
