"""What a hung process is doing, for a test's or benchmark's failure report:
each thread's name, wchan and kernel stack, and its children."""

import os
import subprocess


def threads_of(pid):
    """Each thread of pid: name, wchan and kernel stack, one line per thread."""
    lines = []
    try:
        tids = sorted(os.listdir("/proc/%d/task" % pid), key=int)
    except OSError as e:
        return "threads of %d: %s\n" % (pid, e)
    for tid in tids:
        base = "/proc/%d/task/%s/" % (pid, tid)
        fields = []
        for name in ("comm", "wchan", "stack"):
            try:
                with open(base + name) as f:
                    fields.append(f.read().strip().replace("\n", " | "))
            except OSError as e:
                fields.append("(%s)" % e.strerror)
        lines.append("thread %s %s" % (tid, " ".join(fields)))
    return "\n".join(lines) + "\n"


def children_of(pid):
    """ps lines of pid's children (state and wchan)."""
    r = subprocess.run(["ps", "-o", "pid,ppid,stat,wchan:24,args", "--ppid", str(pid)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return "children:\n" + r.stdout
