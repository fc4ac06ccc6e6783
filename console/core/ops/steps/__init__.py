"""The steps deploy and rollback (and recovery) share, one module each.

Every step is an ``async def`` that takes a
:class:`~console.core.ops.progress.Progress`, reports its events on it and
returns its result (see :mod:`console.core.ops.progress` for why):

- :mod:`.images`: select ``<IMAGE_PREFIX>-backend:<version>`` or build it;
- :mod:`.health`: wait until a service or a colour is healthy (and, for a
  colour, what its migrations say);
- :mod:`.bake`: requests through nginx for a while, verdict on them;
- :mod:`.worker`: move the worker to a version, ready on its own heartbeat.
- :mod:`.drain`: wait until nginx has no request in flight on a container
  it no longer routes to (the rolling deploy, before stopping it).
"""
