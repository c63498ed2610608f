"""What every run of the server shares, whoever runs it (engine, Swarm, session).

``runlife``  the run lifecycle: the bounded output queue, the output cap, stop, cancel, abandon, wait
``slots``    the execution slots of an executor: admitting, finding and stopping its runs

May import: :mod:`dockyter.wire`, the settings and the errors.
"""
