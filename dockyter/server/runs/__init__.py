"""What every run of the server shares, whoever runs it (engine, Swarm, session).

``runlife``     the run lifecycle: the bounded output queue, the output cap, stop, cancel, abandon, wait
``slots``       the execution slots of an executor: admitting, finding and stopping its runs
``upkeep``      start-up clean-up, the periodic sweep and shutdown of the executors and the sessions
``outfolders``  the instance's $DOCKYTER_OUT folders: one private root, one folder per run, removed after
``runreceipt``  the receipt event (what ran, its digest) and how a run's $DOCKYTER_OUT is mounted

May import: :mod:`dockyter.wire`, the settings, the errors and the policy's plan (for receipts and mounts).
"""
