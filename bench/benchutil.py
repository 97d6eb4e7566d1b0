"""Small helpers shared by the bench scripts (stdlib only).

The machine is shared (2 cores): other people's builds and benchmarks can run at
the same time as ours.  These helpers wait for a quiet machine before a timed
run and measure how much CPU *other* processes used while it ran, so a result
taken under foreign load can be flagged or repeated, and the run's peak resident
memory (ru_maxrss).
"""

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time


def busy_seconds():
    """Busy CPU seconds of the whole machine so far (all cores, from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_quiet(max_cores, window=2.0, max_wait=900.0):
    """Wait until the machine uses less than max_cores CPU over `window` seconds.

    Returns the seconds waited, or -1.0 if max_wait ran out (the caller runs anyway)."""
    if max_cores <= 0:
        return 0.0
    t0 = time.time()
    while True:
        b0 = busy_seconds()
        time.sleep(window)
        if (busy_seconds() - b0) / window < max_cores:
            return time.time() - t0
        if time.time() - t0 > max_wait:
            return -1.0


def run_measured(cmd, env=None, timeout=None, cwd=None):
    """Run cmd to completion.

    Returns (CompletedProcess or None on timeout, stats) where stats has
      wall            seconds
      foreign_cores   CPU used by processes other than cmd's tree, averaged over the run
      child_cpu       CPU seconds used by cmd's tree
      preemptions     involuntary context switches of cmd's tree (high = it was displaced)
      max_rss_kb      peak resident set size of the process (ru_maxrss from wait4, KiB;
                      across exec, so `bash script.sh` that execs python reports python's
                      peak), or of its largest waited-for descendant if that is larger

    The child is reaped with os.wait4, so its rusage is its own, not the maximum over every
    child this process ever had (which RUSAGE_CHILDREN's ru_maxrss would be)."""
    b0, t0 = busy_seconds(), time.time()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        lock = threading.Lock()
        state = {"exited": False, "killed": False}

        def kill():
            with lock:
                if not state["exited"]:
                    state["killed"] = True
                    p.kill()

        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, kill)
            timer.daemon = True
            timer.start()
        try:
            # Wait without reaping first: a kill() racing with the exit then hits a zombie,
            # never a recycled pid.
            os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
            with lock:
                state["exited"] = True
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            kill()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.time() - t0
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", errors="replace")
        stderr = err.read().decode("utf-8", errors="replace")
    child_cpu = ru.ru_utime + ru.ru_stime
    foreign = max(0.0, (busy_seconds() - b0) - child_cpu) / max(wall, 1e-9)
    stats = {"wall": wall, "foreign_cores": foreign, "child_cpu": child_cpu,
             "preemptions": ru.ru_nivcsw, "max_rss_kb": ru.ru_maxrss}
    if state["killed"]:
        return None, stats
    return subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr), stats


def boost_priority(n):
    """Raise this process's (and its future children's) CPU priority by n nice levels.

    With CONFIG_SCHED_AUTOGROUP (Debian's default) a nice value only counts inside
    the session's autogroup, so the autogroup's nice is raised too; it is restored
    at exit.  Needs root (CAP_SYS_NICE).  Use only to keep other people's builds from
    skewing a short timed run on a shared machine.  Returns a description."""
    import atexit
    if n <= 0:
        return "none"
    done = []
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -n)
        done.append(f"nice -{n}")
    except OSError as e:
        return f"failed: {e}"
    try:
        with open("/proc/self/autogroup") as f:
            old = int(f.read().split("nice")[1])
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(-n))

        def restore():
            try:
                with open("/proc/self/autogroup", "w") as f:
                    f.write(str(old))
            except OSError:
                pass
        atexit.register(restore)
        # make SIGTERM (e.g. `kill`) run the atexit handler too
        import signal
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        done.append(f"autogroup nice -{n} (restored to {old} at exit)")
    except (OSError, IndexError, ValueError):
        pass
    return ", ".join(done)
