"""What every run of the server shares, whoever runs it (engine, Swarm, session).

``runlife``  the run lifecycle: the bounded output queue, the output cap, stop, cancel, abandon, wait
``slots``    the execution slots of an executor: admitting, finding and stopping its runs
``upkeep``   start-up clean-up, the periodic sweep and shutdown of the executors and the sessions

May import: :mod:`dockyter.wire`, the settings and the errors.
"""
