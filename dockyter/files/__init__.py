"""What a run makes, the notebook shows: the files a command leaves in ``$DOCKYTER_OUT``.

``runfolder``  the docker backend's folders on this machine: one per run, bind-mounted; per cell in a session
``render``     each file as a MIME bundle with its metadata (the run's receipt): images, sandboxed HTML,
               Markdown, JSON, tables, a line for anything else
``svgcheck``   whether an SVG is only a picture (no script, handler or embedded document)
``csvtable``   a CSV or TSV file as a table of its first rows, with its size said
``keep``       ``--files VAR`` (name -> bytes) and ``--save-files DIR``, names checked
``deliver``    after a run: the outputs shown, one line per file that cannot be, the files kept

Reading a folder safely and the API's file events are shared with the server: they live in
:mod:`dockyter.wire.outfolder` and :mod:`dockyter.wire.outfiles`.

May import: :mod:`dockyter.wire`, :mod:`dockyter.errors`, and markdown-it-py (when a Markdown file
is shown). Never IPython: the extension gives the core its ``display``.
"""
