"""Configuration: every setting as a trait, and where each value comes from.

``traits``      :class:`~dockyter.config.traits.DockyterTraits`: every setting, its help, its checks
``argv``        the word-list trait (``shell``, ``docker_command``, ``base_run_args``)
``layers``      default < ipython_config.py < dockyter.toml < run time, and each value's origin
``tomlfile``    finding and reading ``dockyter.toml``
``profiles``    the ``[profiles]`` of that file: reading, applying, for good or for one cell
``tomlvalues``  TOML values against the traits, in words; secrets masked
``doctable``    the trait table of docs/configuration.md (``python -m dockyter.config.doctable``)

May import: traitlets, :mod:`dockyter.wire`, :mod:`dockyter.errors`, and the backend registry and
settings (the ``backend`` and ``api_url`` traits are checked against them); never IPython.
"""
