"""The ``Dockyter`` configurable: the configuration layers, the backend, and the one run path.

Its settings are the traits it inherits from :class:`~dockyter.config.traits.DockyterTraits`:
``%config Dockyter`` lists them with their help; ``%config Dockyter.x = ...`` and
``c.Dockyter.x`` in ``ipython_config.py`` set them. Observers do the work when a trait
changes: ``backend`` swaps the backend, ``redirect`` installs or removes the ``!`` overrides.

Both ``%%docker`` and ``!cmd`` go through :meth:`Dockyter.run`, which sets ``_exit_code`` and
decides, once, what a failure becomes: an exception for a cell, one line for a ``!`` command.
The magics (:mod:`dockyter.ipython.magics`) only parse lines and show tables.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import threading
import time
from datetime import UTC, datetime
from subprocess import CalledProcessError
from typing import TYPE_CHECKING, Any, Protocol, cast

from traitlets import TraitError, default, observe
from traitlets.config import Config
from traitlets.utils.bunch import Bunch

from .announce import Announcer
from .backends.base import Backend, RunRequest, RunResult
from .backends.registry import backend_class
from .config.layers import Layers
from .config.tomlvalues import masked, refusal_reason
from .config.traits import DockyterTraits
from .errors import BadUsage, ContainerNotStarted, DockyterError, Interrupted, exit_error, say
from .files.deliver import Display, save_to, show
from .files.keep import as_dict
from .lifecycle import lifecycle_problem
from .linechecks import unexpanded_in, unexpanded_variable
from .output import OutputSink
from .receipts import Receipt, RunFacts, RunLog
from .runspec import Asker, Ran, RunSpec, bang_asker
from .shorthands import with_shorthands
from .wire.dockerargs import DockerArgsError, RunArgs, parse_run_args
from .wire.outfolder import FileLimits, size_text

if TYPE_CHECKING:
    from .jobs import Job, Jobs, Runner
    from .sessionmanager import SessionManager


class Shell(Protocol):
    """What the core needs of the IPython shell it serves: the user's namespace (``_exit_code``,
    ``--out`` variables). The shell is also the core's traitlets parent, for ``c.Dockyter.*``."""

    user_ns: dict[str, Any]


class Redirector(Protocol):
    """What routes ``!`` commands into containers on the shell (:mod:`dockyter.ipython.redirect`),
    turned on and off by the ``redirect`` trait."""

    def install(self) -> None: ...

    def remove(self) -> None: ...


class Dockyter(DockyterTraits):
    """Run cells and ``!`` commands in containers: ``%%docker``, ``%docker`` and friends."""

    def __init__(self, ipython: Shell | None = None, **kwargs: Any) -> None:
        """``ipython``: the InteractiveShell whose ``user_ns`` and ``!`` this instance serves (None: neither)."""
        if ipython is not None and hasattr(ipython, "config"):
            kwargs.setdefault("parent", ipython)  # so c.Dockyter.* of the shell's config applies
        self.ipython = ipython
        # Before the configuration is loaded: its values fire the observers below.
        self._backend: Backend | None = None
        self._sessions: SessionManager | None = None
        self._jobs: Jobs | None = None
        self._redirection: Redirector | None = None  # given by the extension (attach_redirection)
        self.display: Display | None = None  # shows a run's files as outputs; given by the extension
        self.runs = RunLog()  # the receipts of the last runs: _docker_runs
        self.announcer = Announcer(ipython)
        # Values of the IPython configuration a trait refused: name -> value. Kept out of the
        # layers, so the value below stays in force (see _load_config).
        self.refused_config: dict[str, Any] = {}
        self.config_problems: list[str] = []
        self._prestarting = False  # set once the extension is loaded: see start_prestarting
        super().__init__(**kwargs)
        self.layers = Layers(self)  # provenance of each value; dockyter.toml is applied by extension.load

    # -- the IPython configuration: a refused value never breaks a load ---------------------------

    def _load_config(self, cfg: Config, section_names: list[str] | None = None, traits: Any = None) -> None:
        """Apply ``c.Dockyter.*`` / ``%config``; a value a trait refuses is one line, the value below kept.

        IPython keeps a value ``%config`` refused in the shell's configuration, and
        ``ipython_config.py`` may hold a bad one: either would otherwise make every later load
        of the extension fail (on a site profile, for every user).
        """
        try:
            super()._load_config(cfg, section_names, traits)
            return
        except TraitError:
            pass  # traitlets rolled back every value of this load: apply them one at a time
        for name, value in self._find_my_config(cfg).items():
            try:
                super()._load_config(Config({type(self).__name__: {name: value}}), section_names, traits)
            except TraitError as error:
                self._refuse(name, value, error)

    def _refuse(self, name: str, value: Any, error: TraitError) -> None:
        if name in self.refused_config and repr(self.refused_config[name]) == repr(value):
            return  # traitlets re-applies the whole configuration at each %config: said already
        self.refused_config[name] = value
        loading = not hasattr(self, "layers")
        source = "the IPython configuration (ipython_config.py, or an earlier %config)" if loading else "%config"
        kept = masked(name, getattr(self, name))
        reason = refusal_reason(self.traits()[name], value, error)
        line = f"{source}: Dockyter.{name} = {masked(name, value)} refused: {reason} ({name} stays {kept})"
        if loading:
            self.config_problems.append(line)
        else:
            say(line)

    # -- a computed default, and observers: what happens when a trait changes --------------------

    # Declared here, not with the trait in traits.py: a @default method belongs to the class
    # that declares it, and docs/configuration.md's table reads Dockyter's own.
    @default("api_token")
    def _api_token_from_environment(self) -> str:
        return os.environ.get("DOCKYTER_API_TOKEN", "")

    @property
    def site_api_url(self) -> str:
        """The ``api_url`` of the IPython configuration (a site profile's), whatever holds it now: the only
        URL the API backend sends JupyterHub's token to (:mod:`dockyter.backends.api.credential`)."""
        layers = getattr(self, "layers", None)  # None while the configuration is being loaded
        return str(layers.ipython_values.get("api_url", "")) if layers is not None else ""

    @observe("backend")
    def _swap_backend(self, change: Bunch) -> None:
        if self._backend is not None:
            self._backend.close()
        self._backend = None

    def attach_redirection(self, redirection: Redirector) -> None:
        """Route ``!`` with ``redirection`` from now on, whenever ``redirect`` is on (it may be already)."""
        self._redirection = redirection
        if self.redirect:
            redirection.install()

    # What every prestarted container's line depends on: when one changes, all are let go
    # (their lines would not be asked for again), and `!`'s line gets one anew.
    PRESTART_DEPENDS_ON = (
        *("backend", "docker_command", "base_run_args", "shell", "here", "as_me"),
        *("default_args", "redirect", "session", "prestart", "prestart_limit"),
    )

    @observe(*PRESTART_DEPENDS_ON)
    def _renew_prestarted(self, change: Bunch) -> None:
        if self._backend is not None:
            self._backend.forget_prestarted()
        self.prestart_bang()

    def start_prestarting(self) -> None:
        """From now on (the extension is loaded), `!`'s line has a container ready whenever redirected."""
        self._prestarting = True
        self.prestart_bang()

    def prestart_bang(self) -> None:
        """Start a container for what `!` runs, ahead of the command (``%docker ARGS IMAGE`` says what comes)."""
        if not (self._prestarting and self.redirect and not self.session and self.default_args.strip()):
            return
        try:
            request = self.request(self.configured_args(), RunSpec(""))
            self.active_backend.prestart(request)
        except DockyterError:
            pass  # the first `!` says what is wrong, in one line

    @observe("redirect")
    def _toggle_redirection(self, change: Bunch) -> None:
        if self._redirection is None:
            return
        if change["new"]:
            self._redirection.install()
        else:
            self._redirection.remove()

    @property
    def active_backend(self) -> Backend:
        """The backend named by ``backend``, created on first use; it reads this instance's traits."""
        if self._backend is None:
            self._backend = backend_class(self.backend)(self)
        return self._backend

    @property
    def sessions(self) -> SessionManager:
        """This kernel's sessions, created on first use; new ones start on the active backend."""
        if self._sessions is None:
            from .sessionmanager import SessionManager  # only when sessions are used

            self._sessions = SessionManager(self, lambda: self.active_backend)
        return self._sessions

    @property
    def jobs(self) -> Jobs:
        """This kernel's background jobs (``%%docker --bg``), created on first use."""
        if self._jobs is None:
            from .jobs import Jobs  # only when jobs are used

            self._jobs = Jobs(self, lambda: cast("Runner", self.active_backend))  # start_job checks it is docker's
        return self._jobs

    def start_job(self, spec: RunSpec) -> Job:
        """Run ``spec`` in a container in the background (``--bg``); its output is kept, not shown."""
        if not self.cleans_up_here():
            raise BadUsage(
                f"--bg runs a container of the docker backend in the background; the {self.backend} backend's "
                "runs are its server's: run the cell without --bg"
            )
        request = self.request(spec.args if spec.args is not None else self.configured_args(), spec)
        # No $DOCKYTER_OUT: nothing would show its files once the job ends, after its cell.
        return self.jobs.start(dataclasses.replace(request, files=None), keep_all=list(spec.store.values()))

    def job_names(self) -> list[str]:
        """The numbers of this kernel's jobs, as text (what completion offers)."""
        return self._jobs.numbers() if self._jobs is not None else []

    def job_rows(self) -> list[tuple[str, ...]]:
        return self._jobs.rows() if self._jobs is not None else []

    # Asked of the sessions before any was started, these set nothing up to say there are none.

    def session_names(self) -> list[str]:
        """The names of this kernel's sessions, sorted."""
        return self._sessions.names() if self._sessions is not None else []

    def session_rows(self) -> list[tuple[str, ...]]:
        """The listing of this kernel's sessions (``SessionManager.rows``)."""
        return self._sessions.rows() if self._sessions is not None else []

    def stop_all_sessions(self) -> dict[str, str | None]:
        """Stop every session of this kernel: their names, each with why its stop is unsure (None: it is not)."""
        return self._sessions.stop_all() if self._sessions is not None else {}

    # -- what to run -----------------------------------------------------------------------------

    def configured_args(self) -> RunArgs:
        """``default_args`` parsed; BadUsage when no image is configured."""
        if not self.default_args.strip():
            raise BadUsage(
                "no image configured: give one, e.g. '%%docker ubuntu:24.04', or set it for `!` with '%docker ubuntu:24.04'"
            )
        return parse_args(self.default_args)

    def request(self, args: RunArgs, spec: RunSpec) -> RunRequest:
        """``spec`` as a backend request, with the settings in force: the shell, the timeout unless the
        spec gives one, the shorthands."""
        problem = lifecycle_problem(args)  # default_args may come from a file: checked at each run
        if problem:
            raise BadUsage(problem)
        as_me = spec.as_me or self.as_me
        userns = self.active_backend.as_me_userns() if as_me else None
        args = with_shorthands(args, here=spec.here or self.here, as_me=as_me, userns=userns)
        limit = spec.timeout if spec.timeout is not None else (self.timeout or None)
        return RunRequest(
            args=args,
            command=spec.command,
            shell=tuple(self.shell),
            timeout=limit,
            merge_stderr=spec.merge_stderr,
            files=self.file_limits(),
        )

    def file_limits(self) -> FileLimits | None:
        """How much of $DOCKYTER_OUT a run brings back; None when runs get no folder (``files`` off)."""
        if not self.files:
            return None
        return FileLimits(self.max_file_bytes, self.max_files, self.max_files_bytes)

    # -- the one run path ------------------------------------------------------------------------

    def run(self, spec: RunSpec, asker: Asker) -> Ran | None:
        """Run ``spec`` in one fresh container (its arguments, or ``default_args``), or in the
        running container of its session, and conclude.

        Sets ``_exit_code``, stores captured streams in the variables of ``spec.store``, then
        applies the ``asker``'s policy: raise, or say one line and return. None when the run could
        not start and the asker is not told by an exception.
        """
        self.announcer.flush()  # problems found while loading, if nobody has seen them yet
        written = spec.written or spec.command
        started, clock = datetime.now(UTC), time.monotonic()
        try:
            request, sink, result = self._start(spec)
        except DockyterError as error:
            self._set_exit_code(error.exit_code)
            if asker.raise_errors:
                raise
            say(error)
            if asker.raise_exit:
                raise CalledProcessError(error.exit_code, written) from None
            return None
        self._set_exit_code(result.exit_code)
        receipt = self._record(spec, request, result, started, time.monotonic() - clock)
        self._deliver(spec, result, receipt)
        if result.reason == "interrupted" and asker.raise_errors:
            raise Interrupted(result.message or "interrupted")
        for variable, stream in spec.store.items():
            if self.ipython is not None:
                self.ipython.user_ns[variable] = sink.text(stream)
        if result.exit_code != 0:
            self._conclude_failure(result, request, sink, asker, written)
        return Ran(result, sink)

    def _record(
        self, spec: RunSpec, request: RunRequest, result: RunResult, started: datetime, seconds: float
    ) -> Receipt:
        """The run's receipt, kept in ``_docker_runs``."""
        facts = result.facts or RunFacts()
        receipt = Receipt(
            image=request.args.image,
            digest=facts.digest,
            image_id=facts.image_id,
            argv=facts.argv,
            runtime=facts.runtime,
            node=facts.node,
            exit_code=result.exit_code,
            duration=round(seconds, 3),
            started=started.isoformat(timespec="milliseconds"),
            backend=self.backend,
            session=spec.session,
        )
        self.runs.add(receipt)
        if self.ipython is not None:
            self.ipython.user_ns["_docker_runs"] = self.runs.receipts
        return receipt

    def _deliver(self, spec: RunSpec, result: RunResult, receipt: Receipt) -> None:
        """The run's files: shown (with the receipt in their metadata), stored in ``--files VAR``, saved."""
        files = result.files
        if files is None or files.empty:  # the common case costs nothing more
            if spec.files_variable and self.ipython is not None:
                self.ipython.user_ns[spec.files_variable] = {}
            return
        show(files, receipt.to_dict(), self.display, trust_html=spec.trust_html or self.trust_html)
        if spec.files_variable and self.ipython is not None:
            self.ipython.user_ns[spec.files_variable] = as_dict(files)
        if spec.save_files:
            save_to(files, spec.save_files)

    def _start(self, spec: RunSpec) -> tuple[RunRequest, OutputSink, RunResult]:
        """Run ``spec`` where it asks: a session's container, or a fresh one on the active backend."""
        if spec.session:
            request = self.request(self.sessions.get(spec.session).args, spec)
            sink = spec.sink(self.max_output)
            return request, sink, self.sessions.run(spec.session, request, sink)
        request = self.request(spec.args if spec.args is not None else self.configured_args(), spec)
        sink = spec.sink(self.max_output)
        return request, sink, self.active_backend.run(request, sink)

    def _conclude_failure(
        self, result: RunResult, request: RunRequest, sink: OutputSink, asker: Asker, written: str
    ) -> None:
        code = result.exit_code
        # A captured `!` merged stderr into stdout: the runtime's own message is there.
        tail = sink.stderr_tail or (sink.text("stdout")[-4096:] if request.merge_stderr else "")
        error = exit_error(code, result.reason, result.message, tail, request.shell, request.command)
        if asker.raise_exit and asker.status_in_hint:
            raise error
        if isinstance(error, ContainerNotStarted):
            say(error)  # nothing ran: no exit status to speak of
        elif error.hint:
            say(f"exit status {code}: {error.hint}" if asker.status_in_hint else error.hint)
        if asker.raise_exit:
            raise CalledProcessError(code, written)

    def run_bang(self, command: str, capture: bool, written: str) -> str:
        """One ``!`` command (already expanded by IPython) for the redirection; returns captured stdout."""
        raise_on_error = bool(getattr(self.ipython, "system_raise_on_error", False))
        spec = RunSpec(
            command,
            session=self.session or None,
            merge_stderr=capture,
            show=not capture,
            capture=capture,
            written=written,
        )
        ran = self.run(spec, bang_asker(raise_on_error))
        return ran.sink.text("stdout") if ran is not None else ""

    def _set_exit_code(self, code: int) -> None:
        if self.ipython is not None:
            self.ipython.user_ns["_exit_code"] = code

    # -- status and clean-up ---------------------------------------------------------------------

    def status_rows(self) -> list[tuple[str, str]]:
        """``%docker_status``: the backend and whether it answers, ``!`` redirection, what a cell runs."""
        rows = [("backend", self.backend)]
        try:
            status = self.active_backend.status()
        except DockyterError as error:
            rows.append(("available", f"no: {error}"))
        else:
            rows.append(("available", f"yes: {status.detail}" if status.available else f"no: {status.detail}"))
            rows += list(status.facts.items())
        rows.append(("! redirection", "on" if self.redirect else "off"))
        if self.session:
            rows.append(("! runs in session", self.session))
        if self._sessions is not None and self._sessions.sessions:
            rows.append(("sessions", ", ".join(sorted(self._sessions.sessions))))
        active = self.layers.active_profile
        rows.append(("profile", f"{active.name} (%docker_profile --off drops it)" if active else "(none)"))
        rows.append(("default_args", self.default_args or "(none)"))
        if self.default_args.strip():
            args = parse_run_args(self.default_args)
            rows.append(("image", args.image))
        else:  # what `%%docker IMAGE` would run: the same line, the image left to the cell
            args = RunArgs((), "IMAGE")
        rows.append(("a cell runs", self.active_backend.describe(self.request(args, RunSpec("<cell>")))))
        rows += self._prestart_rows()
        rows.append(("shell", shlex.join(self.shell)))
        rows.append(("timeout", f"{self.timeout:g} s" if self.timeout else "none"))
        rows.append(("files", self._files_row()))
        rows.append(("config file", self.layers.file_label()))
        return rows

    def _files_row(self) -> str:
        """``%docker_status``'s word on $DOCKYTER_OUT: on with its limits, or off."""
        limits = self.file_limits()
        if limits is None:
            return "off (%config Dockyter.files = True gives every run $DOCKYTER_OUT)"
        return (
            f"$DOCKYTER_OUT shown after each run: {size_text(limits.max_file_bytes)} a file, "
            f"{limits.max_files:,} files, {size_text(limits.max_total_bytes)} a run"
        )

    def _prestart_rows(self) -> list[tuple[str, str]]:
        """What is prestarted, for which line; and why `!`'s line runs cold, if it does."""
        bang = None
        if self.default_args.strip() and not self.session:
            try:
                bang = self.request(self.configured_args(), RunSpec(""))
            except DockyterError:
                pass
        try:
            return self.active_backend.prestart_rows(bang)
        except DockyterError:
            return []

    def cleans_up_here(self) -> bool:
        """Whether the backend's containers can be left behind on this machine by a dead kernel."""
        return backend_class(self.backend).leaves_orphans

    def cleanup_in_background(self) -> None:
        """Remove orphans without delaying the load; failures are silent (status explains them)."""
        # Orphans exist only where this machine's container CLI started them; the API's server
        # cleans up after itself.
        if not self.cleanup_on_load or not self.cleans_up_here():
            return
        backend = self.active_backend
        threading.Thread(target=_quiet_cleanup, args=(backend,), name="dockyter-cleanup", daemon=True).start()

    def shutdown(self) -> None:
        """Undo everything on the shell: used by %unload_ext."""
        self.redirect = False
        self.display = None
        if self._jobs is not None:
            self._jobs.close()
            self._jobs = None
        if self._sessions is not None:
            self._sessions.close()
            self._sessions = None
        if self._backend is not None:
            self._backend.close()
            self._backend = None


def parse_args(text: str | list[str]) -> RunArgs:
    """``[DOCKER ARGS...] IMAGE`` from a magic line (a trailing ``# comment`` allowed); BadUsage if it cannot be.

    Flags that would leave a container behind (``-d``, ``--rm=false``...) are refused here too.
    """
    try:
        args = parse_run_args(text, comments=True)
    except DockerArgsError as error:  # '$IMAGE' is not a valid image: the $ is the reason
        raise BadUsage(unexpanded_in(str(error)) or str(error)) from None
    problem = lifecycle_problem(args) or unexpanded_variable(args)
    if problem:
        raise BadUsage(problem)
    return args


def _quiet_cleanup(backend: Backend) -> None:
    try:
        backend.cleanup()
    except Exception:  # noqa: BLE001 - a background chore must never disturb the kernel
        pass
