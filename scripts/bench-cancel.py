#!/usr/bin/env python3
"""How long `floe sql` takes to give the prompt back after Ctrl-C.

Usage: scripts/bench-cancel.py [FLOE_BIN]   (default: the release build)

Runs the shell in a pseudo-terminal on an empty lake, types each statement
below, presses Ctrl-C after 0.5, 1.5 and 3.0 s, and prints how long the
prompt took to come back ("done": the statement had already answered).
docs/benchmarks.md records the figures.
"""
import fcntl, os, pty, select, struct, sys, tempfile, termios, time

STATEMENTS = [
    "SELECT sum(a.value*b.value) FROM range(60000) a, range(60000) b;",
    "SELECT count(*) FROM range(60000) a, range(60000) b WHERE a.value + b.value = 7;",
    "SELECT count(*) FROM range(60000) a JOIN range(60000) b ON a.value < b.value;",
    "SELECT count(*) FROM (SELECT unnest(range(10000)) FROM range(3000000));",
    "SELECT count(*) FROM (SELECT unnest(range(1000)) FROM range(20000000));",
    "SELECT count(DISTINCT a.value*b.value) FROM range(20000) a, range(20000) b;",
    "SELECT max(x) FROM (SELECT value, row_number() OVER (ORDER BY random()) x FROM range(30000000));",
]

target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/floe/target"))
floe = sys.argv[1] if len(sys.argv) > 1 else os.path.join(target, "release", "floe")
work = tempfile.mkdtemp(prefix="floe-bench-cancel-")
config = os.path.join(work, "floe.toml")
with open(config, "w") as f:
    f.write('[lake]\nwarehouse = "%s"\n' % os.path.join(work, "lake"))

pid, fd = pty.fork()
if pid == 0:
    os.execv(floe, [floe, "sql", "--config", config, "--history", os.path.join(work, "history")])
# wide enough that no statement wraps (a wrapped line redraws the prompt)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 400, 0, 0))
out = b""


def until(tokens, seconds=600):
    global out
    end = time.time() + seconds
    while not any(t in out for t in tokens):
        if time.time() > end:
            sys.exit("timed out waiting for %r" % tokens)
        if select.select([fd], [], [], 0.01)[0]:
            out += os.read(fd, 65536)
    i = min(out.index(t) + len(t) for t in tokens if t in out)
    seen, out = out[:i], out[i:]
    return seen


until([b"floe> "])
for statement in STATEMENTS:
    figures = []
    for wait in (0.5, 1.5, 3.0):
        os.write(fd, statement.encode() + b"\r")
        time.sleep(wait)
        sent = time.time()
        os.write(fd, b"\x03")
        seen = until([b"error: ", b"+\r\n"])
        seen += until([b"floe> "])
        back = time.time() - sent
        figures.append("%.2f" % back if b"cancelled" in seen else "done")
        time.sleep(0.3)
        while select.select([fd], [], [], 0.05)[0]:
            os.read(fd, 65536)
        out = b""
    print("%-90s %s" % (statement, ", ".join(figures)), flush=True)
os.write(fd, b"\\q\r")
os.waitpid(pid, 0)
