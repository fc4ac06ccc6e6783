"""Read-side sources: each turns one backend into snapshot models.

========================  ===========  =========================================
module                    sink kind    backend
========================  ===========  =========================================
:mod:`.docker`            containers,  Docker engine (docker SDK, threads):
                          events,      containers, serving colour, events,
                          stats        stats streams, logs
:mod:`.health`            health       nginx and each colour (httpx), /metrics
:mod:`.postgres`          database     PostgreSQL (asyncpg)
:mod:`.redis_quota`       quotas       the quota ledger in Redis (redis.asyncio)
:mod:`.cost`              cost         the API's cost and cache metrics (httpx)
:mod:`.operations`        others       the state folder: other operators' deploy
                                       lock, audit lines and journal (files)
========================  ===========  =========================================

Submodules are imported on demand, so importing this package pulls in none
of the client libraries.
"""

from console.core.sources.base import Source, backoff_delay

__all__ = ["Source", "backoff_delay"]
