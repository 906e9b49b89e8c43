"""Dramatiq app for the interop test, on a real Redis broker.

The broker URL comes from INTEROP_DRAMATIQ_REDIS_URL (a database the test
owns). The z4j agent is installed only in a process that was given agent
credentials, i.e. the `dramatiq` worker process; the producer imports the
same module to send messages and runs no agent.
"""

import logging
import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ["INTEROP_DRAMATIQ_REDIS_URL"])
dramatiq.set_broker(broker)

PARKED_QUEUE = "dq_parked"


@dramatiq.actor(max_retries=0)
def add(x, y):
    return x + y


@dramatiq.actor(max_retries=0)
def declined(order):
    # The card number is not a z4j key or value pattern, so it leaves the
    # agent inside the exception text; Palisade's own scrub must catch it.
    raise RuntimeError(f"order {order}: card 4111 1111 1111 1111 was declined")


@dramatiq.actor(max_retries=0, queue_name=PARKED_QUEUE)
def parked(n):
    return n


@dramatiq.actor(max_retries=0)
def park(count):
    # Runs in the worker, so the agent's after_enqueue hook reports each
    # parked message to Palisade (task.received) while it waits on a queue
    # this worker does not consume.
    for i in range(int(count)):
        parked.send(i)


if os.environ.get("Z4J_TOKEN"):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    from z4j_bare import install_agent
    from z4j_dramatiq import DramatiqEngineAdapter

    install_agent(engines=[DramatiqEngineAdapter(broker=broker)])
