#!/usr/bin/env python3
"""A FlowFabric worker in plain Python (standard library only).

It long-polls for work over HTTP, renews its lease while a handler runs,
and completes or fails each execution, or suspends it to wait for a signal.
With --demo-flow it first submits a small flow (a diamond) and exits 0 once
that flow has completed; with --demo-suspend it submits one execution that
waits for a signal, signals it, and exits 0 once it has completed with it.

    python3 worker.py --server http://127.0.0.1:7878 --lanes py --demo-flow
    python3 worker.py --server http://127.0.0.1:7878 --lanes py --demo-suspend
"""

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request


class Api:
    def __init__(self, server, namespace, token=None):
        self.base = f"{server.rstrip('/')}/v1/namespaces/{namespace}"
        self.token = token

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        if self.token:
            req.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read().decode()
                return resp.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as err:
            text = err.read().decode()
            return err.code, (json.loads(text) if text else None)


class Suspend(Exception):
    """Raised by a handler to wait until one of `waitpoints` is signalled.
    The lease is given back; the same attempt is claimed again once a
    signal arrives, and the handler runs from the top with it."""

    def __init__(self, *waitpoints):
        super().__init__(", ".join(waitpoints))
        self.waitpoints = list(waitpoints)


def wait_for_signal(claimed):
    """Waits on waitpoint `go`, then completes with the signals received."""
    signals = claimed.get("signals") or []
    if not signals:
        raise Suspend("go")
    return {"signals": [{key: s[key] for key in ("waitpoint", "name", "payload", "source")} for s in signals]}


def handle(claimed):
    """The work itself: here, echo the node key and the parents' outcomes."""
    if claimed["kind"] == "wait_for_signal":
        return wait_for_signal(claimed)
    inputs = claimed.get("inputs") or {}
    return {
        "kind": claimed["kind"],
        "payload": claimed["payload"],
        "parents": {key: value["outcome"] for key, value in inputs.items()},
    }


def renew_while(api, handle_, lease_ms, done):
    """Renews at a third of the lease until `done` is set."""
    while not done.wait(lease_ms / 3000):
        status, body = api.call("POST", "/leases/renew", {"handle": handle_})
        if status != 200:
            print(f"renew refused ({status}): {body}", file=sys.stderr)
            return


def work_once(api, lanes, worker_id):
    status, claimed = api.call("POST", "/claims", {
        "lanes": lanes, "worker_id": worker_id, "n": 10, "wait_ms": 2000,
    })
    if status == 204:
        return 0
    if status != 200:
        raise RuntimeError(f"claim failed ({status}): {claimed}")
    for job in claimed:
        done = threading.Event()
        renewer = threading.Thread(
            target=renew_while, args=(api, job["handle"], job["lease_ms"], done), daemon=True)
        renewer.start()
        try:
            try:
                result = handle(job)
            except Suspend as wait:
                result = suspend(api, job, wait.waitpoints)
                if result is None:  # suspended: the lease is released, nothing to report
                    continue
            status, body = api.call("POST", "/leases/complete", {"handle": job["handle"], "result": result})
        except Exception as err:  # a handler failure fails the attempt, retryably
            status, body = api.call("POST", "/leases/fail", {"handle": job["handle"], "error": str(err)})
        finally:
            done.set()
        if status != 200:
            print(f"report refused ({status}): {body}", file=sys.stderr)
    return len(claimed)


def suspend(api, job, waitpoints):
    """Suspends the attempt on `waitpoints`: None once suspended (the lease
    is released), or the handler's result when signals delivered before the
    suspend already satisfy it (the lease is kept, the handler runs again)."""
    status, answer = api.call("POST", "/leases/suspend", {
        "handle": job["handle"], "key": "+".join(waitpoints), "waitpoints": waitpoints,
    })
    if status != 200:
        raise RuntimeError(f"suspend refused ({status}): {answer}")
    if answer["status"] == "already_satisfied":
        return handle(dict(job, signals=answer["signals"]))
    # Each waitpoint's token signals it without the API token: hand it only
    # to whoever is to signal, never to a log.
    keys = ", ".join(w["key"] for w in answer["waitpoints"])
    print(f"{job['handle']['execution_id']} suspended on {keys}", flush=True)
    return None


def run_demo_suspend(api, lanes, worker_id, timeout):
    """Submits a `wait_for_signal` execution, works until it is suspended,
    signals its waitpoint `go` as an operator would (by execution id, with
    the API token), and works until it completes with that signal."""
    status, created = api.call("POST", "/executions", {
        "lane": lanes[0], "kind": "wait_for_signal", "payload": {"demo": "suspend"},
    })
    if status not in (200, 201):
        raise RuntimeError(f"submit failed ({status}): {created}")
    exec_id = created["id"]
    deadline = time.monotonic() + timeout
    signalled = False
    while time.monotonic() < deadline:
        work_once(api, lanes, worker_id)
        _, execution = api.call("GET", f"/executions/{exec_id}/result")
        if execution["state"] == "suspended" and not signalled:
            status, sent = api.call("POST", f"/executions/{exec_id}/waitpoints/go/signals", {
                "name": "go", "payload": {"from": "worker.py"}, "source": "demo",
                "idempotency_key": "demo-go",
            })
            if status != 200:
                raise RuntimeError(f"signal refused ({status}): {sent}")
            signalled = True
        if execution["outcome"]:
            print(json.dumps({"execution": exec_id, "outcome": execution["outcome"], "result": execution["result"]}))
            signals = (execution["result"] or {}).get("signals") or []
            ok = execution["outcome"] == "completed" and [s["name"] for s in signals] == ["go"]
            return 0 if ok else 1
    print(f"execution {exec_id} not done after {timeout}s", file=sys.stderr)
    return 1


def submit_demo_flow(api, lane):
    def node(key):
        return {"key": key, "execution": {"lane": lane, "kind": "py.step", "payload": {"node": key}}}
    spec = {
        "nodes": [node("extract"), node("left"), node("right"), node("load")],
        "edges": [
            {"from": "extract", "to": "left"}, {"from": "extract", "to": "right"},
            {"from": "left", "to": "load"}, {"from": "right", "to": "load"},
        ],
    }
    status, created = api.call("POST", "/flows", spec)
    if status not in (200, 201):
        raise RuntimeError(f"flow submit failed ({status}): {created}")
    return created["flow_id"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:7878")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--token")
    parser.add_argument("--lanes", default="py", help="comma-separated lanes")
    parser.add_argument("--worker-id", default="python-worker")
    parser.add_argument("--demo-flow", action="store_true", help="submit a diamond flow, exit when it completes")
    parser.add_argument("--demo-suspend", action="store_true",
                        help="submit an execution that waits for a signal, signal it, exit when it completes")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    api = Api(args.server, args.namespace, args.token)
    lanes = args.lanes.split(",")
    if args.demo_suspend:
        return run_demo_suspend(api, lanes, args.worker_id, args.timeout)
    flow_id = submit_demo_flow(api, lanes[0]) if args.demo_flow else None
    deadline = time.monotonic() + args.timeout
    while True:
        work_once(api, lanes, args.worker_id)
        if flow_id:
            _, flow = api.call("GET", f"/flows/{flow_id}")
            if flow["state"] != "running":
                states = {n["key"]: n["state"] for n in flow["nodes"]}
                print(json.dumps({"flow": flow_id, "state": flow["state"], "nodes": states}))
                return 0 if flow["state"] == "completed" else 1
            if time.monotonic() > deadline:
                print(f"flow {flow_id} still running after {args.timeout}s", file=sys.stderr)
                return 1


if __name__ == "__main__":
    sys.exit(main())
