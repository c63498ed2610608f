"""Sessions on ``dockyter-server``: warm containers whose shell keeps its state between commands.

``sessionregistry``   every session of one server instance, per token: limits, reaper, clean-up
``sessioncontainer``  one session's container: created, checked, started; its bash, pipes and removal
``sessionrun``        one command in a session, which streams like an execution
``sessionidle``       between commands: the pipes read at a bounded pace, a 64 KiB tail kept
``sessionmemory``     what each session's container uses in memory, read in the background for listings

May import: :mod:`dockyter.wire`, the settings, the policy's Plan, ``engine/``, ``runs/`` and the errors.
"""
