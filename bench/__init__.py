"""stackdeck benchmarks (issue 6): run with ``bash bench/run.sh`` or ``python3 -m bench``.

Not part of the test suite: these measure wall-clock time, CPU and memory on
the machine they run on, side by side with a peer (``docker stats``,
``docker compose up --force-recreate``) so the ratios survive a noisy host.
"""
