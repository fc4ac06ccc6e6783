"""The Docker engine sources, on the docker SDK.

====================  ========================================================
module                what
====================  ========================================================
:mod:`.inspect`       pure parsers of ``docker inspect`` output (state, health,
                      labels, colour, version, image, ports, started-at, CPU
                      limit); shared with the ops engine
:mod:`.handle`        the shared client, its thread pool, readable errors
:mod:`.stream`        one stream read by a thread (events, stats, logs)
:mod:`.containers`    ``containers``: the project's containers, serving colour
:mod:`.events`        ``events``: the engine's event timeline
:mod:`.stats`         ``stats``: one stats stream per running container
:mod:`.swarm`         ``swarm``: a swarm stack's services, tasks, nodes; the
                      stack's mode (compose project or swarm stack)
:mod:`.logs`          ``follow_logs``: a container's log, tail then follow
====================  ========================================================

Nothing is imported here: the ops engine imports :mod:`.inspect` without the
docker SDK, and the SDK itself is imported only when a client is created.
"""
