#!/usr/bin/env python3
"""An approval gate: a flow that waits for a person (standard library only).

It submits the flow `draft → approve → publish` and works its lane. The
`approve` node creates a waitpoint, prints the one curl that approves it and
suspends, holding no worker and no lease until that signal arrives; then it
runs again from the top with the signal and completes with the approval.
`publish` names the approver. With --auto-approve the script sends that
signal itself, so it runs unattended.

    python3 approval_gate.py --server http://127.0.0.1:7878
    python3 approval_gate.py --server http://127.0.0.1:7878 --auto-approve
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

# The signal the printed curl sends, byte for byte.
APPROVAL = '{"name":"approved","payload":{"by":"you"}}'


def send(method, url, data=None, token=None):
    """One HTTP request; answers (status, decoded JSON or None)."""
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
            return resp.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as err:
        text = err.read().decode()
        return err.code, (json.loads(text) if text else None)


class Api:
    def __init__(self, server, namespace, token=None):
        self.server = server.rstrip("/")
        self.base = f"{self.server}/v1/namespaces/{namespace}"
        self.token = token

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        return send(method, self.base + path, data, self.token)

    def signal(self, waitpoint_token, body_text):
        """What the printed curl does: the waitpoint token is the only
        credential, so no API token is sent."""
        return send("POST", f"{self.server}/v1/signals/{waitpoint_token}", body_text.encode())


class Gate:
    """The worker's three handlers. Each returns the result to complete
    with, or None when it has suspended (the lease is given back)."""

    def __init__(self, api, auto_approve):
        self.api = api
        self.auto_approve = auto_approve

    def draft(self, job):
        return {"title": job["payload"]["title"], "text": "FlowFabric now waits for people."}

    def approve(self, job):
        # A resumed attempt runs again from the top: its signals come first.
        signals = job.get("signals") or []
        if not signals:
            return self.ask(job)
        return verdict(job, signals)

    def ask(self, job):
        # The waitpoint exists before the lease is given up, so the token is
        # in hand even if the suspend below has to be retried; a signal that
        # arrives in between is kept and counts.
        status, grant = self.api.call("POST", "/leases/waitpoint", {"handle": job["handle"], "key": "approve"})
        if status != 200:
            raise RuntimeError(f"waitpoint refused ({status}): {grant}")
        curl = (f"curl -X POST {self.api.server}/v1/signals/{grant['token']}"
                f" -H 'content-type: application/json' -d '{APPROVAL}'")
        print(f"{job['node_key']} waits for approval; to approve:\n{curl}", flush=True)
        status, answer = self.api.call("POST", "/leases/suspend", {
            "handle": job["handle"], "key": "approve", "waitpoints": ["approve"],
        })
        if status != 200:
            raise RuntimeError(f"suspend refused ({status}): {answer}")
        if answer["status"] == "already_satisfied":  # approved before we suspended
            return verdict(job, answer["signals"])
        if self.auto_approve:
            status, sent = self.api.signal(grant["token"], APPROVAL)
            print(f"--auto-approve sent it ({status}): {json.dumps(sent)}", flush=True)
            if status != 200:
                raise RuntimeError(f"signal refused ({status}): {sent}")
        return None

    def publish(self, job):
        # `inputs` holds the direct parents only: the approval carries the title on.
        approval = job["inputs"]["approve"]["result"]
        return {"published": approval["title"], "approved_by": approval["approved_by"]}


class Rejected(Exception):
    """The approval was refused: the node fails for good, publish is skipped."""


def verdict(job, signals):
    signal = signals[0]
    if signal["name"] != "approved":
        raise Rejected(f"{signal['name']} by {json.dumps(signal['payload'])}")
    by = (signal["payload"] or {}).get("by")
    if not by:
        raise Rejected("an approval must say who approved: {\"by\": NAME}")
    return {"title": job["inputs"]["draft"]["result"]["title"], "approved_by": by,
            "source": signal["source"], "at": signal["received_at"], "attempt": job["handle"]["attempt"]}


def work_once(api, gate, lane, worker_id):
    # The handlers are quick, so the lease needs no renewing here; see
    # examples/python-worker for a worker that renews while it works.
    status, claimed = api.call("POST", "/claims", {
        "lanes": [lane], "worker_id": worker_id, "n": 10, "wait_ms": 1000,
    })
    if status == 204:
        return
    if status != 200:
        raise RuntimeError(f"claim failed ({status}): {claimed}")
    for job in claimed:
        try:
            result = getattr(gate, job["kind"])(job)
            if result is None:
                continue
            status, body = api.call("POST", "/leases/complete", {"handle": job["handle"], "result": result})
        except Rejected as err:
            status, body = api.call("POST", "/leases/fail", {
                "handle": job["handle"], "error": f"rejected: {err}", "retryable": False,
            })
        except Exception as err:  # any other failure fails the attempt, retryably
            print(f"{job['kind']} failed: {err!r}", file=sys.stderr)
            status, body = api.call("POST", "/leases/fail", {"handle": job["handle"], "error": repr(err)})
        if status != 200:
            print(f"report refused ({status}): {body}", file=sys.stderr)


def submit_flow(api, lane):
    def node(key, payload=None):
        execution = {"lane": lane, "kind": key}
        if payload is not None:
            execution["payload"] = payload
        return {"key": key, "execution": execution}
    spec = {
        "nodes": [node("draft", {"title": "Release notes"}), node("approve"), node("publish")],
        "edges": [{"from": "draft", "to": "approve"}, {"from": "approve", "to": "publish"}],
    }
    status, created = api.call("POST", "/flows", spec)
    if status not in (200, 201):
        raise RuntimeError(f"flow submit failed ({status}): {created}")
    return created["flow_id"]


def outcome(api, flow, auto_approve):
    """Prints the flow's end; 0 when every node completed and publish names
    the approver (with --auto-approve, the one the script sent)."""
    states = {n["key"]: n["state"] for n in flow["nodes"]}
    publish = next(n["execution_id"] for n in flow["nodes"] if n["key"] == "publish")
    _, published = api.call("GET", f"/executions/{publish}/result")
    result = published.get("result") or {}
    print(json.dumps({"flow": flow["id"], "state": flow["state"], "nodes": states, "publish": result}))
    expected = json.loads(APPROVAL)["payload"]["by"] if auto_approve else None
    approver = result.get("approved_by")
    ok = all(s == "completed" for s in states.values()) and bool(approver)
    return 0 if ok and expected in (None, approver) else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:7878")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--token", help="the API token (FF_API_TOKEN of the server)")
    parser.add_argument("--lane", default="approval-gate")
    parser.add_argument("--worker-id", default="approval-gate")
    parser.add_argument("--auto-approve", action="store_true", help="send the approval itself, as the curl would")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before giving up (exit 1)")
    args = parser.parse_args()
    api = Api(args.server, args.namespace, args.token)
    gate = Gate(api, args.auto_approve)
    deadline = time.monotonic() + args.timeout
    flow_id = submit_flow(api, args.lane)
    print(f"flow {flow_id}: draft → approve → publish", flush=True)
    while time.monotonic() < deadline:
        work_once(api, gate, args.lane, args.worker_id)
        status, flow = api.call("GET", f"/flows/{flow_id}")
        if status != 200:
            raise RuntimeError(f"flow read failed ({status}): {flow}")
        if flow["state"] != "running":
            return outcome(api, flow, args.auto_approve)
    print(f"flow {flow_id} still running after {args.timeout} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
