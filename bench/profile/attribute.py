"""Attributes each perf sample to the deepest frame that belongs to our crates (executus,
executus_llm, executus_bench): "which of our functions is this time spent under, libraries
included". Samples with no frame of ours are grouped by library.

    perf record -e cpu-clock -F 1500 -g --call-graph dwarf,16384 -o perf.data \
        target/release/executus-bench p1-only --engine executus --runs 3000
    perf script -i perf.data -F comm,pid,tid,ip,sym | python3 bench/profile/attribute.py PID

PID is the bench process's id (the first `executus-bench` pid in `perf report --sort pid`;
the mock child is another process and is left out)."""
import sys, re, collections
pids = set(sys.argv[1:])
counts = collections.Counter()
total = 0
cur_pid = None
frames = []
ours = re.compile(r'(^|[<\s&])(executus(_llm|_bench)?)::')
def flush():
    global total
    if cur_pid is None or (pids and cur_pid not in pids):
        return
    total += 1
    for f in frames:  # leaf first
        if ours.search(f):
            name = re.sub(r'::\{\{closure\}\}', '', f)
            name = re.sub(r'\s*\(inlined\)', '', name)
            counts[name[:150]] += 1
            return
    # no frame of ours: classify by library
    key = 'other'
    joined = ' '.join(frames)
    for lib in ['ractor', 'hyper', 'reqwest', 'tokio', 'mio']:
        if lib + '::' in joined:
            key = 'no executus frame: ' + lib; break
    else:
        if '[kernel' in joined or 'kallsyms' in joined: key='no executus frame: kernel only'
    counts[key] += 1
for line in sys.stdin:
    if not line.strip():
        flush(); cur_pid=None; frames=[]; continue
    if not line.startswith((' ', '\t')):
        parts=line.split()
        # comm pid/tid or comm pid
        m = re.search(r'\s(\d+)(/\d+)?\s', ' '+line)
        cur_pid = parts[1].split('/')[0] if len(parts)>1 else None
        frames=[]
    else:
        s=line.strip()
        sym = s.split(' ',1)[1] if ' ' in s else s
        sym = re.sub(r'\+0x[0-9a-f]+', '', sym)
        frames.append(sym)
flush()
for k,v in counts.most_common(45):
    print(f"{100*v/total:6.2f}%  {k}")
print("total samples", total)
