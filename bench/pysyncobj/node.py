#!/usr/bin/env python3
"""A PySyncObj cluster member for syncobj-bench.

`syncobj-bench` starts N of these (with `--system pysyncobj`, or in `compare`) exactly as it
starts its own members, and drives both over the same line protocol, so that the two systems
run the same workload and are measured by the same code. The protocol and the workload are
described in src/bin/syncobj-bench/node.rs; in short:

  stdin   load SIZE COUNT SECONDS WINDOW TIMEOUT | latency SIZE COUNT BUDGET | status | exit
  stdout  "@@ event started pid=P", "@@ event leader_commit ok=1 dt=S",
          "@@ reply <command> key=value ..."

The state machine is the baseline's: apply(payload) -> count, counting calls and bytes.
Configuration: PySyncObj's defaults, plus `--nobatch` (appendEntriesUseBatch=False) and
`--password` (encrypted transport, needs the `cryptography` package).

The member leaves when its stdin closes, on SIGINT or SIGTERM, or after --max-life seconds.

Needs: pip install pysyncobj==0.3.17 cryptography
"""

import argparse
import os
import random
import signal
import sys
import threading
import time

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

LEADER = 2  # pysyncobj's _RAFT_STATE.LEADER

# FAIL_REASON codes by name, for the failure counts of a `load` reply.
REASONS = {getattr(FAIL_REASON, name): name for name in dir(FAIL_REASON) if name.isupper()}

_stdout = threading.Lock()


def emit(text):
    with _stdout:
        sys.stdout.write("@@ " + text + "\n")
        sys.stdout.flush()


class Bench(SyncObj):
    """The baseline's state machine: counts calls and payload bytes."""

    def __init__(self, me, partners, conf):
        super().__init__(me, partners, conf)
        self.count = 0
        self.total_bytes = 0

    @replicated
    def apply(self, payload):
        self.count += 1
        self.total_bytes += len(payload)
        return self.count


def payload_pool(size):
    """256 distinct random payloads of `size` bytes, built before any timed loop."""
    rng = random.Random(12345)
    return [rng.randbytes(size) for _ in range(256)]


class Member:
    def __init__(self, args):
        self.node = None
        options = {"onStateChanged": self.state_changed}
        if args.nobatch:
            options["appendEntriesUseBatch"] = False
        if args.password:
            options["password"] = args.password
        addrs = args.addrs.split(",")
        me = addrs[args.index]
        self.node = Bench(me, [a for a in addrs if a != me], SyncObjConf(**options))
        emit("event started pid=%d" % os.getpid())

    def state_changed(self, _old, new):
        """The leadership hook: a new leader makes one call and reports when it commits."""
        if new != LEADER:
            return
        became = time.monotonic()

        def done(_result, error):
            if error == FAIL_REASON.SUCCESS:
                emit("event leader_commit ok=1 dt=%.6f" % (time.monotonic() - became))
            else:
                emit("event leader_commit ok=0 err=%s" % error)

        node = self.node
        if node is None:  # still being built
            emit("event leader_commit ok=0 err=not_built")
            return
        node.apply(b"L" * 10, callback=done)

    def load(self, size, count, seconds, window, timeout):
        """Calls with a callback each: `count` of them (0: no limit) or for `seconds` (0: no
        limit), at most `window` in flight (0: no limit); then waits for every callback."""
        pool = payload_pool(size)
        guard = threading.Lock()
        all_done = threading.Event()
        room = threading.Semaphore(window) if window > 0 else None
        tally = {"done": 0, "ok": 0, "last_ok": None, "target": None, "reasons": {}}

        def finished(_result, error):
            now = time.monotonic()
            with guard:
                tally["done"] += 1
                if error == FAIL_REASON.SUCCESS:
                    tally["ok"] += 1
                    tally["last_ok"] = now
                else:
                    key = REASONS.get(error, "code%s" % error)
                    tally["reasons"][key] = tally["reasons"].get(key, 0) + 1
                if tally["done"] == tally["target"]:
                    all_done.set()
            if room is not None:
                room.release()

        apply = self.node.apply
        start = time.monotonic()
        deadline = start + timeout
        stop = start + seconds if seconds > 0 else deadline
        sent = 0
        while count == 0 or sent < count:
            if room is not None and not room.acquire(timeout=0.05):
                if time.monotonic() >= stop:
                    break
                continue
            apply(pool[sent % 256], callback=finished)
            sent += 1
            if sent % 256 == 0 and time.monotonic() >= stop:
                break
        submitted = time.monotonic() - start
        with guard:
            tally["target"] = sent
            if tally["done"] >= sent:
                all_done.set()
        all_done.wait(max(0.0, deadline - time.monotonic()))
        with guard:
            done, ok, last_ok = tally["done"], tally["ok"], tally["last_ok"]
            reasons = ",".join("%s:%d" % kv for kv in sorted(tally["reasons"].items()))
        elapsed = (last_ok if ok else time.monotonic()) - start
        return "ok=%d failed=%d sent=%d elapsed=%.6f submit=%.6f timed_out=%d reasons=%s" % (
            ok, done - ok, sent, elapsed, submitted, int(done < sent), reasons or "none")

    def latency(self, size, count, budget):
        """Sequential waited calls, each timed around the call."""
        pool = payload_pool(size)
        millis, failed = [], 0
        start = time.monotonic()
        for i in range(count):
            if time.monotonic() - start > budget:
                break
            t = time.perf_counter()
            try:
                self.node.apply(pool[i % 256], sync=True, timeout=5.0)
                millis.append((time.perf_counter() - t) * 1e3)
            except Exception:  # pysyncobj raises SyncObjException on failure or timeout
                failed += 1
        millis.sort()

        def pct(p):
            if not millis:
                return float("nan")
            rank = (len(millis) - 1) * p / 100.0
            lo = int(rank)
            hi = min(lo + 1, len(millis) - 1)
            return millis[lo] + (millis[hi] - millis[lo]) * (rank - lo)

        mean = sum(millis) / len(millis) if millis else float("nan")
        top = millis[-1] if millis else float("nan")
        return "done=%d failed=%d p50_ms=%.4f p90_ms=%.4f p99_ms=%.4f mean_ms=%.4f max_ms=%.4f" % (
            len(millis), failed, pct(50), pct(90), pct(99), mean, top)

    def status(self):
        node = self.node
        links = sum(1 for other in node.otherNodes if node.isNodeConnected(other))
        return "count=%d leader=%d links=%d" % (node.count, int(node._isLeader()), links)

    def serve(self):
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            try:
                if words[0] == "exit":
                    break
                if words[0] == "load" and len(words) == 6:
                    reply = self.load(int(words[1]), int(words[2]), float(words[3]),
                                      int(words[4]), float(words[5]))
                elif words[0] == "latency" and len(words) == 4:
                    reply = self.latency(int(words[1]), int(words[2]), float(words[3]))
                elif words[0] == "status":
                    reply = self.status()
                else:
                    emit("reply error unknown_command")
                    continue
                emit("reply %s %s" % (words[0], reply))
            except Exception as problem:  # report, keep serving
                emit("reply error %s" % repr(problem).replace(" ", "_"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--addrs", required=True)
    parser.add_argument("--password")
    parser.add_argument("--nobatch", action="store_true")
    parser.add_argument("--max-life", type=float, default=150.0)
    args = parser.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: os._exit(1))

    def watchdog():
        time.sleep(args.max_life)
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    Member(args).serve()
    os._exit(0)


if __name__ == "__main__":
    main()
