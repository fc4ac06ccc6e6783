"""Moved to :mod:`console.core.sources.docker`.

Kept only for ``console/ui/app.py``, which imports the log follower from
here; once it imports :func:`console.core.sources.docker.logs.follow_logs`,
delete this module.
"""

from console.core.sources.docker.logs import follow_logs

__all__ = ["follow_logs"]
