"""Every setting of Dockyter: the traits, their help texts and their validators.

:class:`DockyterTraits` declares what ``%config Dockyter`` lists and ``c.Dockyter.*``,
``%config Dockyter.x = ...`` and ``dockyter.toml`` set; :class:`~dockyter.core.Dockyter`
inherits it and adds what happens when they change (the observers), the backend, the
sessions and the run path. A value is checked here, when it is set, so a bad one never
reaches a run.
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, Float, Int, TraitError, TraitType, Unicode, validate
from traitlets.config import Configurable
from traitlets.utils.bunch import Bunch

from ..backends.registry import known_backends
from ..backends.settings import api_url_problem
from ..wire.contract import DEFAULT_SHELL
from ..wire.dockerargs import DockerArgsError, parse_run_args
from ..wire.outfolder import DEFAULT_LIMITS
from .argv import words_setting
from .tomlvalues import MASKED_TRAITS, masked


class DockyterTraits(Configurable):
    """The settings of :class:`~dockyter.core.Dockyter`, each with its help text."""

    # -- what runs where ------------------------------------------------------------------------

    backend = Unicode(
        "docker",
        help="Which backend runs containers: 'docker' (the local container CLI) or 'api' (a remote "
        "Dockyter HTTP service at api_url). Same as %docker_backend.",
    ).tag(config=True)

    default_args = Unicode(
        "",
        help="Docker arguments ending with the image, e.g. '-v /data:/data ubuntu:24.04'. Used by `!` "
        "when redirection is on and by a %%docker line with no arguments. %docker ARGS IMAGE sets it.",
    ).tag(config=True)

    redirect = Bool(
        False,
        help="Whether `!cmd`, `x = !cmd`, `!!cmd` and %sx run in a container (with default_args). "
        "%docker and %docker_on turn it on, %docker_off turns it off.",
    ).tag(config=True)

    docker_command = words_setting(
        ["docker"],
        "The container CLI as an argv prefix: ['docker'], ['podman'] (rootful or rootless) or ['sudo', 'docker']. "
        "Another CLI that follows Docker's command line (nerdctl) may work; it is not tested.",
        minlen=1,
    )

    shell = words_setting(
        DEFAULT_SHELL,
        "How the cell is run inside the container; the cell text is appended as the last argument. "
        "Use ['sh', '-c'] for images without bash.",
        minlen=1,
    )

    base_run_args = words_setting(
        ["--log-driver", "none"],
        "Arguments added to every `docker run` before the user's own. The default keeps the engine "
        "from also writing all output to a log file on disk (we stream it and remove the container).",
    )

    here = Bool(
        False,
        help="Mount the kernel's working directory (usually the notebook's folder) at the same path in "
        "every container and start there: -v CWD:CWD -w CWD. --here does it for one cell.",
    ).tag(config=True)

    as_me = Bool(
        False,
        help="Run every container as the kernel's own uid:gid (--user), so files written into a mount "
        "belong to you, not root. --as-me does it for one cell.",
    ).tag(config=True)

    max_output = Int(
        1_000_000,
        min=0,
        help="Bytes of output a cell (or a `!` command) shows, stdout and stderr together; the rest is "
        "counted, not shown, and one line at the end says how much. 0: no limit. --out and --err "
        "capture everything whatever the limit.",
    ).tag(config=True)

    # -- how a run ends -------------------------------------------------------------------------

    raise_on_error = Bool(
        True,
        help="Raise CalledProcessError when a %%docker cell exits non-zero (as %%bash does). "
        "--no-raise-error turns it off for one cell. `!` follows IPython's system_raise_on_error instead.",
    ).tag(config=True)

    timeout = Float(
        0.0,
        min=0.0,
        help="Seconds a container may run before it is stopped; 0 means no limit. --timeout overrides it per cell.",
    ).tag(config=True)

    stop_grace = Float(
        2.0,
        min=0.0,
        help="Seconds between SIGINT and kill when a container is interrupted or timed out.",
    ).tag(config=True)

    session_idle_timeout = Float(
        0.0,
        min=0.0,
        help="Seconds a session (%docker_session start) may stay without a cell before it is stopped; "
        "0 means never. A stopped session shows as dead until %docker_session restart.",
    ).tag(config=True)

    session = Unicode(
        "",
        help="The session in which `!` commands run when redirection is on (%docker --session NAME sets it); "
        "empty: a fresh container per command, with default_args.",
    )

    cleanup_on_load = Bool(
        True,
        help="When the extension loads, remove Dockyter containers left by kernels that died "
        "(never anything else). %docker_cleanup does the same on demand.",
    ).tag(config=True)

    # -- what a run makes ----------------------------------------------------------------------

    files = Bool(
        True,
        help="Give every run an empty folder, $DOCKYTER_OUT, and show what the command leaves there once "
        "it ends: PNG, JPEG, GIF and SVG as images, HTML (sandboxed) and Markdown rendered, JSON, CSV and "
        "TSV as a table, any other file as a line with its name and size.",
    ).tag(config=True)

    max_file_bytes = Int(
        DEFAULT_LIMITS.max_file_bytes,
        min=0,
        help="Bytes one file of $DOCKYTER_OUT may have to be read and shown; a larger one is one line. "
        "Through the API, the server's own limit applies too.",
    ).tag(config=True)

    max_files = Int(
        DEFAULT_LIMITS.max_files,
        min=0,
        help="Files of $DOCKYTER_OUT read per run; the rest are counted in one line.",
    ).tag(config=True)

    max_files_bytes = Int(
        DEFAULT_LIMITS.max_total_bytes,
        min=0,
        help="Bytes of $DOCKYTER_OUT read per run, all files together; the files past it are one line each.",
    ).tag(config=True)

    trust_html = Bool(
        False,
        help="Show HTML files of $DOCKYTER_OUT as they are, scripts included, instead of in a sandboxed "
        "frame where no script runs and nothing is fetched. Only for tools you trust; --trust-html "
        "does it for one cell.",
    ).tag(config=True)

    # -- prestarted containers -------------------------------------------------------------------

    prestart = Int(
        1,
        min=0,
        help="Containers started ahead of need for each line (the docker arguments, image and settings a "
        "run would have), each used for one command: a fresh container in milliseconds. A line gets them "
        "after its first run, and %docker ARGS IMAGE at once. 0 turns prestarting off.",
    ).tag(config=True)

    prestart_limit = Int(
        4,
        min=0,
        help="At most this many prestarted containers in all; the line used longest ago gives way.",
    ).tag(config=True)

    prestart_idle = Float(
        600.0,
        min=0.0,
        help="Seconds a prestarted container may wait unused before it is let go; 0 means it waits as long "
        "as the kernel lives.",
    ).tag(config=True)

    # -- the API backend ------------------------------------------------------------------------

    api_url = Unicode(
        "",
        help="Base URL of the Dockyter HTTP service used by the 'api' backend, e.g. https://dockyter.example.org.",
    ).tag(config=True)

    api_token = Unicode(
        help="Bearer token sent to the API service. Defaults to $DOCKYTER_API_TOKEN as it is when the "
        "extension first needs it; never printed. When neither is set, in a JupyterHub single-user server, "
        "the hub's token for that server ($JUPYTERHUB_API_TOKEN) is sent, but only to the api_url that "
        "ipython_config.py sets (the site profile's).",
    ).tag(config=True)

    api_headers = Dict(
        value_trait=Unicode(),
        key_trait=Unicode(),
        help="Extra HTTP headers sent with every API request.",
    ).tag(config=True)

    api_verify = Bool(
        True,
        help="Verify the API service's TLS certificate. Turn off only for testing.",
    ).tag(config=True)

    api_ca_bundle = Unicode(
        "",
        help="Path to a CA bundle used to verify the API service's certificate (empty: the system's).",
    ).tag(config=True)

    api_connect_timeout = Float(
        5.0,
        min=0.1,
        help="Seconds to wait for the API service to accept a connection.",
    ).tag(config=True)

    api_idle_timeout = Float(
        60.0,
        min=1.0,
        help="Seconds an API stream may stay silent (no output, no heartbeat) before the run is "
        "abandoned. There is no limit on the total duration.",
    ).tag(config=True)

    # -- checked when set -----------------------------------------------------------------------

    @validate("backend")
    def _check_backend(self, proposal: Bunch) -> str:
        name: str = proposal["value"]
        if name not in known_backends():
            raise TraitError(f"unknown backend {name!r}; known backends: {', '.join(known_backends())}")
        return name

    @validate("default_args")
    def _check_default_args(self, proposal: Bunch) -> str:
        text: str = proposal["value"]
        if text.strip():
            try:
                parse_run_args(text)
            except DockerArgsError as error:
                raise TraitError(f"invalid default_args {text!r}: {error}") from None
        return text

    @validate("api_url")
    def _check_api_url(self, proposal: Bunch) -> str:
        url: str = proposal["value"].strip()
        problem = api_url_problem(url) if url else None
        if problem:
            raise TraitError(problem)
        return url

    @classmethod
    def class_get_trait_help(cls, trait: TraitType[Any, Any], inst: Any = None, helptext: str | None = None) -> str:
        """One trait's help as ``%config Dockyter`` lists it, with secrets in the current value masked."""
        if inst is None or trait.name not in MASKED_TRAITS:
            return super().class_get_trait_help(trait, inst, helptext)
        lines = super().class_get_trait_help(trait, None, helptext).splitlines()
        lines = [line for line in lines if not line.lstrip().startswith("Default:")]
        return "\n".join([*lines, f"    Current: {masked(str(trait.name), getattr(inst, str(trait.name)))}"])
