#!/usr/bin/env python3
"""Prints the reliability figures of a test run, for docs/reliability.md.

    scripts/reliability-figures.py BUILD_DIR... [--fuzz-log FILE]

Reads each build dir's meson-logs/testlog.json for the figures the suites
print as doctest MESSAGEs (the crash trials always; the fault-point and
storage-fault counts when CRDTSYNC_RELIABILITY_FIGURES is set, as .ci/run
does), and the fuzz log (tests/fuzz/run.sh's "fuzz <target>: ok N
executions" lines). Prints one line per figure, summed over the build dirs
(named once, in the first line); a storage figure no suite printed says
"not reported", the others print 0. Exits 0 even then: the test results
decide whether a run passed, not this.
"""
import json
import os
import re
import sys

dirs, fuzz_log = [], None
args = sys.argv[1:]
while args:
    a = args.pop(0)
    if a == '--fuzz-log':
        fuzz_log = args.pop(0)
    else:
        dirs.append(a)

crash = re.compile(r'MESSAGE: (\d+) kills survived, (\d+) operations reported before them, (\d+) snapshot loads')
faults = re.compile(r'MESSAGE: fault points tried: (\d+)')
counted = re.compile(r'MESSAGE: (truncation lengths tried|garbage page trials|garbage page trials that crashed \(without verify_on_open\)|garbage page trials with verify_on_open|garbage record trials): (\d+)')

kills = ops = loads = points = 0
storage = {}
for d in dirs:
    log = os.path.join(d, 'meson-logs', 'testlog.json')
    if not os.path.exists(log):
        continue
    for line in open(log, encoding='utf-8', errors='replace'):
        out = json.loads(line).get('stdout') or ''
        for m in crash.finditer(out):
            kills += int(m.group(1))
            ops += int(m.group(2))
            loads += int(m.group(3))
        for m in faults.finditer(out):
            points += int(m.group(1))
        for m in counted.finditer(out):
            storage[m.group(1)] = storage.get(m.group(1), 0) + int(m.group(2))

where = ', '.join(os.path.basename(d.rstrip('/')) for d in dirs)
print(f'reliability figures ({where}):')
print(f'  SIGKILL crash trials: {kills} kills survived, {ops} operations reported before them, '
      f'{loads} snapshot loads interrupted and completed')
print(f'  store fault points tried (a failure at each store call of apply, local writes, prunes, peer updates): {points}')
for what in ('truncation lengths tried', 'garbage page trials', 'garbage page trials that crashed (without verify_on_open)',
             'garbage page trials with verify_on_open', 'garbage record trials'):
    print(f'  storage faults, {what}: {storage.get(what, "not reported")}')
if fuzz_log and os.path.exists(fuzz_log):
    for line in open(fuzz_log, encoding='utf-8', errors='replace'):
        m = re.match(r'fuzz (\S+): ok (\d+) executions in (\S+)', line)
        if m:
            print(f'  fuzz {m.group(1)}: {m.group(2)} executions in {m.group(3)}')
