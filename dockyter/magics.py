"""The ``Dockyter`` configurable: every setting as a trait, and the magics as thin parsers.

``%config Dockyter`` lists the traits with their help; ``%config Dockyter.x = ...`` and
``c.Dockyter.x`` in ``ipython_config.py`` set them. Observers do the work when a trait
changes: ``backend`` swaps the backend, ``redirect`` installs or removes the ``!`` overrides.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets.config import Configurable
from traitlets import Bool, Dict, Float, List, TraitError, Unicode, default, observe, validate

from . import backends
from .backends.base import Backend, RunRequest, RunResult
from .dockerargs import DockerArgsError, RunArgs, parse_run_args, split_line
from .errors import ContainerExitError, DockyterError, Interrupted
from .hints import explain_exit
from .layers import Layers
from .magicline import parse_cell_line
from .output import OutputSink
from .redirect import Redirection
from .status import StatusReport
from .urls import api_url_problem
from .tomlvalues import MASKED_TRAITS, masked


def report(message: str) -> None:
    """One line from Dockyter on stderr (shown red in a notebook)."""
    sys.stderr.write(f"Dockyter: {message}\n")
    sys.stderr.flush()


@magics_class
class Dockyter(Magics):
    """Run cells and ``!`` commands in containers: ``%%docker``, ``%docker`` and friends."""

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

    docker_command = List(
        Unicode(),
        default_value=["docker"],
        minlen=1,
        help="The container CLI as an argv prefix: ['docker'], ['podman'], ['nerdctl'] or ['sudo', 'docker'].",
    ).tag(config=True)

    shell = List(
        Unicode(),
        default_value=["bash", "-lc"],
        minlen=1,
        help="How the cell is run inside the container; the cell text is appended as the last argument. "
        "Use ['sh', '-c'] for images without bash.",
    ).tag(config=True)

    base_run_args = List(
        Unicode(),
        default_value=["--log-driver", "none"],
        help="Arguments added to every `docker run` before the user's own. The default keeps the engine "
        "from also writing all output to a log file on disk (we stream it and remove the container).",
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

    cleanup_on_load = Bool(
        True,
        help="When the extension loads, remove Dockyter containers left by kernels that died "
        "(never anything else). %docker_cleanup does the same on demand.",
    ).tag(config=True)

    # -- the API backend ------------------------------------------------------------------------

    api_url = Unicode(
        "",
        help="Base URL of the Dockyter HTTP service used by the 'api' backend, e.g. https://dockyter.example.org.",
    ).tag(config=True)

    api_token = Unicode(
        help="Bearer token sent to the API service. Defaults to $DOCKYTER_API_TOKEN as it is when the "
        "extension first needs it; never printed.",
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

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # Magics.__init__ stores the IPython shell as `self.shell`, but `shell` is our trait
        # (the shell inside the container), so this does Magics' work with `self.ipython`.
        if shell is not None:
            if hasattr(shell, "configurables"):
                shell.configurables.append(self)
            if hasattr(shell, "config"):
                kwargs.setdefault("parent", shell)
        self.ipython = shell
        self.options_table: dict[str, Any] = {}
        class_magics = self.magics
        self.magics = {
            kind: {name: getattr(self, method) if isinstance(method, str) else method for name, method in table.items()}
            for kind, table in class_magics.items()
        }
        # Before the configuration is loaded: its values fire the observers below.
        self._backend: Backend | None = None
        self._redirection = Redirection(shell, self._run_for_shell)
        Configurable.__init__(self, **kwargs)
        self.layers = Layers(self)  # provenance of each value; dockyter.toml is applied by extension.load

    # -- traits: validation and observers --------------------------------------------------------

    @default("api_token")
    def _api_token_from_environment(self) -> str:
        return os.environ.get("DOCKYTER_API_TOKEN", "")

    @validate("backend")
    def _check_backend(self, proposal: Any) -> str:
        name = proposal["value"]
        if name not in backends.known_backends():
            raise TraitError(f"unknown backend {name!r}; known backends: {', '.join(backends.known_backends())}")
        return name

    @validate("default_args")
    def _check_default_args(self, proposal: Any) -> str:
        text = proposal["value"]
        if text.strip():
            try:
                parse_run_args(text)
            except DockerArgsError as error:
                raise TraitError(f"invalid default_args {text!r}: {error}") from None
        return text

    @validate("api_url")
    def _check_api_url(self, proposal: Any) -> str:
        url = proposal["value"].strip()
        problem = api_url_problem(url) if url else None
        if problem:
            raise TraitError(problem)
        return url

    @observe("backend")
    def _swap_backend(self, change: Any) -> None:
        if self._backend is not None:
            self._backend.close()
        self._backend = None

    @observe("redirect")
    def _toggle_redirection(self, change: Any) -> None:
        if change["new"]:
            self._redirection.install()
        else:
            self._redirection.remove()

    @property
    def active_backend(self) -> Backend:
        """The backend named by ``backend``, created on first use."""
        if self._backend is None:
            self._backend = backends.backend_class(self.backend)(self)
        return self._backend

    # -- running a request ---------------------------------------------------------------------

    def _request(self, args: RunArgs, command: str, timeout: float | None, merge: bool = False) -> RunRequest:
        limit = timeout if timeout is not None else (self.timeout or None)
        return RunRequest(args=args, command=command, shell=tuple(self.shell), timeout=limit, merge_stderr=merge)

    def _configured_args(self) -> RunArgs:
        if not self.default_args.strip():
            raise UsageError(
                "no image configured: give one, e.g. '%%docker ubuntu:24.04', or set it for `!` with '%docker ubuntu:24.04'"
            )
        return _parse_or_usage_error(self.default_args)

    def _run_for_shell(self, command: str, capture: bool) -> tuple[int, str]:
        """Run one ``!`` command (already expanded by IPython) for the redirection."""
        try:
            request = self._request(self._configured_args(), command, None, merge=capture)
            sink = OutputSink(show=not capture, capture=capture)
            result = self.active_backend.run(request, sink)
        except UsageError as error:
            report(str(error))
            return 2, ""  # as shells answer a misused builtin
        except DockyterError as error:
            report(str(error))
            return error.exit_code, ""
        if result.message:
            report(result.message)
        elif result.exit_code in (125, 126, 127, 137):
            hint = explain_exit(result.exit_code, sink.stderr_tail, request.shell)
            if hint:
                report(hint)
        return result.exit_code, sink.text("stdout")

    # -- magics ---------------------------------------------------------------------------------

    @cell_magic
    def docker(self, line: str, cell: str) -> None:
        """Run the cell in one fresh container: ``%%docker [OPTIONS] [--] [DOCKER ARGS...] IMAGE``.

        The whole cell runs through ``bash -lc`` (Dockyter.shell) in one container, so cd,
        variables, loops and heredocs carry from line to line. Output streams live; stderr is
        shown as stderr. With no arguments, Dockyter.default_args is used.

        Options (before the docker arguments; ``--`` ends them):
          --no-raise-error   do not raise CalledProcessError on a non-zero exit
          --raise-error      raise even if Dockyter.raise_on_error is off
          --timeout SECONDS  stop the container after this long (exit status 124)
          --out VAR          also store stdout in the variable VAR
          --err VAR          also store stderr in the variable VAR
          --profile NAME     run this cell with a dockyter.toml profile (its arguments and
                             overrides; %docker_profile lists them)

        After the run, ``_exit_code`` holds the exit status (124: timed out, 130: interrupted).
        Interrupting the kernel stops and removes the container.

        ``$name`` and ``{expression}`` on the magic line expand from Python, as on any
        IPython magic line; the cell itself reaches the container's shell untouched.

        Examples::

            %%docker -v {project_dir}:/work -w /work python:3.12
            python --version
            ls
        """
        try:
            options = parse_cell_line(line)
        except DockerArgsError as error:
            raise UsageError(f"%%docker: {error}") from None
        with self.layers.one_cell(options.profile):  # --profile NAME: its args and overrides, this cell only
            args = _parse_or_usage_error(options.docker_tokens) if options.docker_tokens else self._configured_args()
            request = self._request(args, cell, options.timeout)
            sink = OutputSink(show=True, capture=bool(options.out or options.err))
            result = self._run_reporting_interrupt(request, sink)
            self.ipython.user_ns["_exit_code"] = result.exit_code
            if options.out:
                self.ipython.user_ns[options.out] = sink.text("stdout")
            if options.err:
                self.ipython.user_ns[options.err] = sink.text("stderr")
            self._conclude(result, request, sink, options.raise_on_error)

    def _run_reporting_interrupt(self, request: RunRequest, sink: OutputSink) -> RunResult:
        try:
            result = self.active_backend.run(request, sink)
        except DockyterError as error:
            self.ipython.user_ns["_exit_code"] = error.exit_code
            raise
        if result.reason == "interrupted":
            self.ipython.user_ns["_exit_code"] = result.exit_code
            raise Interrupted(result.message or "interrupted")
        return result

    def _conclude(self, result: RunResult, request: RunRequest, sink: OutputSink, raise_error: bool | None) -> None:
        if result.exit_code == 0:
            return
        hint = result.message or explain_exit(result.exit_code, sink.stderr_tail, request.shell)
        should_raise = self.raise_on_error if raise_error is None else raise_error
        if should_raise:
            raise ContainerExitError(result.exit_code, request.command, hint)
        if hint:
            report(f"exit status {result.exit_code}: {hint}")

    @line_magic("docker")
    def docker_line(self, line: str) -> None:
        """Run every later ``!cmd`` in a fresh container: ``%docker [DOCKER ARGS...] IMAGE``.

        Stores the arguments in Dockyter.default_args and turns redirection on, so ``!cmd``,
        ``x = !cmd``, ``!!cmd`` and ``%sx cmd`` run in containers. ``%docker_off`` restores
        the normal ``!``; ``%docker_on`` brings the containers back. Without arguments, says
        what is configured.
        """
        if not line.strip():
            self._say_configuration()
            return
        args = _parse_or_usage_error(line)
        self.default_args = str(args)
        self.redirect = True
        print(f"Dockyter: `!` now runs in {args.image} ({self.backend} backend); %docker_off to stop.")

    def _say_configuration(self) -> None:
        if not self.default_args:
            print("Dockyter: nothing configured. Use %docker [DOCKER ARGS...] IMAGE.")
            return
        state = "on" if self.redirect else "off (%docker_on to turn it on)"
        print(f"Dockyter: default_args = {self.default_args!r}; `!` redirection {state}; backend {self.backend}.")

    @line_magic
    def docker_on(self, line: str) -> None:
        """Run ``!`` commands in containers again, with the last arguments given to %docker."""
        if not self.default_args.strip():
            raise UsageError("nothing to turn on: first use %docker [DOCKER ARGS...] IMAGE")
        self.redirect = True

    @line_magic
    def docker_off(self, line: str) -> None:
        """Restore IPython's own ``!`` behaviour (the arguments are kept for %docker_on)."""
        self.redirect = False

    @line_magic
    def docker_backend(self, line: str) -> None:
        """Choose the backend: ``%docker_backend docker`` or ``%docker_backend api URL``, then show the status."""
        try:
            words = split_line(line, comments=True)
        except DockerArgsError as error:
            raise UsageError(f"%docker_backend: {error}") from None
        if not words:
            raise UsageError(f"usage: %docker_backend {{{'|'.join(backends.known_backends())}}} [URL]")
        name, rest = words[0], words[1:]
        try:
            if name == "api":
                if len(rest) > 1 or (not rest and not self.api_url):
                    raise UsageError("usage: %docker_backend api URL")
                if rest:
                    self.api_url = rest[0]
            elif rest:
                raise UsageError(f"%docker_backend {name} takes no further arguments")
            self.backend = name
        except TraitError as error:
            raise UsageError(str(error)) from None
        self.docker_status("")

    @line_magic
    def docker_status(self, line: str) -> None:
        """Show the backend, whether it is available and why not, the configured image and arguments,
        whether ``!`` is redirected, and the exact command a cell would run."""
        try:
            status = self.active_backend.status()
        except DockyterError as error:
            status = None
            availability = f"no: {error}"
        else:
            availability = f"yes: {status.detail}" if status.available else f"no: {status.detail}"
        rows = [("backend", self.backend), ("available", availability)]
        if status is not None:
            rows += list(status.facts.items())
        rows.append(("! redirection", "on" if self.redirect else "off"))
        rows.append(("default_args", self.default_args or "(none)"))
        if self.default_args.strip():
            args = parse_run_args(self.default_args)
            rows.append(("image", args.image))
            request = self._request(args, "<cell>", None)
            rows.append(("a cell runs", self.active_backend.describe(request)))
        rows.append(("shell", shlex.join(self.shell)))
        rows.append(("timeout", f"{self.timeout:g} s" if self.timeout else "none"))
        rows.append(("config file", self.layers.file_label()))
        display(StatusReport("Dockyter status", rows))

    @line_magic
    def docker_cleanup(self, line: str) -> None:
        """Remove Dockyter containers left running by kernels that died (and nothing else)."""
        if self.backend != "docker":
            print(f"Dockyter: the {self.backend} backend's service removes its own containers; nothing to clean here.")
            return
        removed = self.active_backend.cleanup()
        if removed:
            print(f"Dockyter: removed {len(removed)} container(s) left by dead kernels: {', '.join(removed)}")
        else:
            print("Dockyter: no containers left by dead kernels.")

    # -- configuration: dockyter.toml and its profiles (dockyter/layers.py) ----------------------

    @line_magic
    def docker_profile(self, line: str) -> None:
        """Apply a dockyter.toml profile for later ``!`` commands: ``%docker_profile NAME``.

        Like ``%docker ARGS IMAGE`` with the profile's arguments: sets Dockyter.default_args and
        the traits the profile overrides (shell, timeout, backend...), and turns redirection on.
        Without a name, lists the profiles and what each sets.
        """
        name = line.strip()
        if not name:
            rows = self.layers.profile_rows()
            if rows:
                display(StatusReport(f"Profiles in {self.layers.file_label()}", rows))
            else:
                print(f"Dockyter: no profiles; define them under [profiles] in dockyter.toml ({self.layers.file_label()})")
            return
        profile = self.layers.use_profile(name)
        image = parse_run_args(profile.args).image
        print(f"Dockyter: profile {name!r}: `!` now runs in {image} ({self.backend} backend); %docker_off to stop.")

    @line_magic
    def docker_config(self, line: str) -> None:
        """Show the dockyter.toml read and where each value came from; ``%docker_config reload`` re-reads it.

        Layers, lowest first: default < ipython_config.py < dockyter.toml < run time. A reload
        keeps every value changed at run time in this kernel (%config, %docker, %docker_profile...)
        and recomputes the others, so a value removed from the file falls back to the layers below.
        """
        action = line.strip()
        if action == "reload":
            changed, kept = self.layers.reload()
            print(f"Dockyter: read {self.layers.file_label()}; changed: {', '.join(changed) or 'nothing'}"
                  + (f"; kept run-time values of {', '.join(kept)}" if kept else ""))
        elif action:
            raise UsageError("usage: %docker_config [reload]")
        else:
            display(StatusReport("Dockyter configuration", self.layers.rows()))

    @classmethod
    def class_get_trait_help(cls, trait: Any, inst: Any = None, helptext: str | None = None) -> str:
        """One trait's help as ``%config Dockyter`` lists it, with secrets in the current value masked."""
        if inst is None or trait.name not in MASKED_TRAITS:
            return super().class_get_trait_help(trait, inst, helptext)
        lines = super().class_get_trait_help(trait, None, helptext).splitlines()
        lines = [line for line in lines if not line.lstrip().startswith("Default:")]
        return "\n".join([*lines, f"    Current: {masked(trait.name, getattr(inst, trait.name))}"])

    # -- lifecycle -----------------------------------------------------------------------------

    def cleanup_in_background(self) -> None:
        """Remove orphans without delaying the load; failures are silent (status explains them)."""
        # Orphans exist only where this machine's container CLI started them; the API's server
        # cleans up after itself.
        if not self.cleanup_on_load or self.backend != "docker":
            return
        backend = self.active_backend
        threading.Thread(target=_quiet_cleanup, args=(backend,), name="dockyter-cleanup", daemon=True).start()

    def shutdown(self) -> None:
        """Undo everything on the shell: used by %unload_ext."""
        self.redirect = False
        if self._backend is not None:
            self._backend.close()
            self._backend = None


def _quiet_cleanup(backend: Backend) -> None:
    try:
        backend.cleanup()
    except Exception:  # noqa: BLE001 - a background chore must never disturb the kernel
        pass


def _parse_or_usage_error(text: str | list[str]) -> RunArgs:
    try:
        return parse_run_args(text, comments=True)
    except DockerArgsError as error:
        raise UsageError(str(error)) from None
