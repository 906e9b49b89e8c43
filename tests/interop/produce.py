"""Producer and probe for the interop test. No agent runs here.

    produce.py rq-enqueue URL PLAN      PLAN: [{"key","queue","func","args","kwargs"}]
    produce.py dramatiq-send PLAN       PLAN: [{"key","actor","args"}]
    produce.py rq-depth URL QUEUE
    produce.py rq-status URL JOB_ID
    produce.py dramatiq-depth QUEUE

Enqueue commands print {"key": "<job or message id>", ...} as JSON.
"""

import json
import sys


def rq_enqueue(url, plan):
    import redis
    from rq import Queue

    import rq_tasks

    conn = redis.Redis.from_url(url)
    ids = {}
    for item in plan:
        queue = Queue(item.get("queue", "default"), connection=conn)
        func = getattr(rq_tasks, item["func"])
        job = queue.enqueue(func, *item.get("args", []), **item.get("kwargs", {}))
        ids[item["key"]] = job.id
    return ids


def dramatiq_send(plan):
    import dramatiq_app

    ids = {}
    for item in plan:
        actor = getattr(dramatiq_app, item["actor"])
        message = actor.send(*item.get("args", []))
        ids[item["key"]] = message.message_id
    return ids


def rq_depth(url, queue):
    import redis
    from rq import Queue

    return Queue(queue, connection=redis.Redis.from_url(url)).count


def rq_status(url, job_id):
    import redis
    from rq.job import Job

    return Job.fetch(job_id, connection=redis.Redis.from_url(url)).get_status().value


def dramatiq_depth(queue):
    import dramatiq_app

    # The broker's qsize already counts the queue's delay queue (.DQ) too.
    return int(dramatiq_app.broker.do_qsize(queue) or 0)


def main(argv):
    cmd = argv[1]
    if cmd == "rq-enqueue":
        out = rq_enqueue(argv[2], json.loads(argv[3]))
    elif cmd == "dramatiq-send":
        out = dramatiq_send(json.loads(argv[2]))
    elif cmd == "rq-depth":
        out = rq_depth(argv[2], argv[3])
    elif cmd == "rq-status":
        out = rq_status(argv[2], argv[3])
    elif cmd == "dramatiq-depth":
        out = dramatiq_depth(argv[2])
    else:
        raise SystemExit(f"unknown command {cmd!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
