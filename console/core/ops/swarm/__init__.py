"""The operations on a swarm stack: deploy (a rolling ``service update``
with stackdeck's bake on top), rollback, scale, node drain and activate.

- :mod:`console.core.ops.swarm.plan`: the pure rules (refusals, images,
  what an ``UpdateStatus`` means), unit-tested;
- :mod:`console.core.ops.swarm.ops`: the implementations the engine
  (:func:`console.core.ops.run_op`) runs when the stack is a swarm stack.
"""
