"""Summarises a massif profile's peak snapshot by allocation owner (the deepest frame naming
executus, hyper, reqwest, ractor, serde_json, mio or bytes; a spawned task's cell by its
future type). With a second argument, breaks down the allocations under frames containing it.

    (sleep 300 | target/release/executus-bench mock --latency-ms 2000) &   # prints its address
    valgrind --tool=massif --massif-out-file=massif.out \
        target/release/executus-bench p3-worker --engine executus --url http://ADDR/v1 --runs 1000
    python3 bench/profile/massif.py massif.out ["<executus::lane::actor::Lane>"]
"""
import re, sys, collections
text = open(sys.argv[1]).read().split('\n')
# locate snapshots
snaps = []
i = 0
while i < len(text):
    if text[i].startswith('snapshot='):
        n = int(text[i].split('=')[1]); j = i+1; info = {}
        while j < len(text) and not text[j].startswith('heap_tree='):
            k, _, v = text[j].partition('='); info[k] = v; j += 1
        tree_kind = text[j].split('=')[1]
        start = j+1; j += 1
        while j < len(text) and not text[j].startswith('#-') and not text[j].startswith('snapshot='):
            j += 1
        snaps.append((n, int(info.get('mem_heap_B', 0)), tree_kind, text[start:j]))
        i = j
    else:
        i += 1
peak = max((s for s in snaps if s[2] in ('detailed', 'peak')), key=lambda s: s[1])
print('snapshot', peak[0], 'heap', peak[1])
lines = peak[3]
pat = re.compile(r'^(\s*)n(\d+): (\d+) (.*)$')
nodes = []
for l in lines:
    m = pat.match(l)
    if m: nodes.append((len(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)))
keys = ['executus', 'hyper', 'reqwest', 'ractor', 'serde_json', 'mio', 'bytes']
out = collections.Counter()
stack = []
def classify(path):
    for fr in reversed(path):
        m = re.search(r'Cell<([^,]*)', fr)
        if 'task::core::Cell' in fr and m:
            return 'spawned task future: ' + m.group(1)[:110]
        for k in keys:
            if k in fr:
                name = re.sub(r'^0x[0-9A-F]+: ', '', fr)
                name = re.sub(r'\(.*\)$', '', name).strip()
                return name[:140]
    return 'other: ' + (path[-1][:80] if path else '')
for depth, nchild, b, desc in nodes:
    while stack and stack[-1][0] >= depth:
        stack.pop()
    stack.append((depth, desc))
    if nchild == 0:
        out[classify([d for _, d in stack[1:]])] += b
tot = sum(out.values())
for k, v in out.most_common(30):
    print(f"{v/1e6:8.2f} MB {100*v/tot:5.1f}%  {k}")

print('--- inside', sys.argv[2] if len(sys.argv) > 2 else '')
if len(sys.argv) > 2:
    sub = collections.Counter()
    stack = []
    for depth, nchild, b, desc in nodes:
        while stack and stack[-1][0] >= depth:
            stack.pop()
        stack.append((depth, desc))
        if nchild == 0:
            path = [d for _, d in stack[1:]]
            if any(sys.argv[2] in fr for fr in path):
                # first 'meaningful' frames from the leaf, skipping allocator plumbing
                fr = [re.sub(r'^0x[0-9A-F]+: ', '', f) for f in path]
                fr = [f for f in fr if not re.match(r'(aligned_malloc|alloc|__rustc|alloc_impl|allocate|box_new|new<|with_capacity|try_allocate|reserve|grow|finish_grow|do_reserve|UnknownInlinedFun|malloc)', f)]
                key = ' <- '.join(f[:70] for f in fr[:4])
                sub[key] += b
    for k, v in sub.most_common(25):
        print(f"{v/1e6:8.2f} MB  {k}")
