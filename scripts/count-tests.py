#!/usr/bin/env python3
"""Sums test results over meson build dirs and prints "N passed, N failed".

A doctest executable counts its test cases; any other meson test counts as
one. A fuzz log (from tests/fuzz/run.sh) adds one case per target line
"fuzz <target>: ok|FAILED ...". Exits non-zero when anything failed or when
no test ran at all.
"""
import json, re, sys, os

dirs, fuzz_log = [], None
args = sys.argv[1:]
while args:
    a = args.pop(0)
    if a == '--fuzz-log':
        fuzz_log = args.pop(0)
    else:
        dirs.append(a)

passed = failed = 0
doctest_re = re.compile(r'\[doctest\] test cases:\s*(\d+) \|\s*(\d+) passed \|\s*(\d+) failed')
for d in dirs:
    log = os.path.join(d, 'meson-logs', 'testlog.json')
    if not os.path.exists(log):
        print(f'{d}: no test log (build failed?)')
        failed += 1
        continue
    for line in open(log, encoding='utf-8', errors='replace'):
        t = json.loads(line)
        ok = t.get('result') in ('OK', 'EXPECTEDFAIL')
        m = doctest_re.search(t.get('stdout') or '')
        if m:
            p, f = int(m.group(2)), int(m.group(3))
            if not ok and f == 0:
                f = 1  # crashed or sanitizer abort after the summary
            passed += p
            failed += f
        else:
            passed += ok
            failed += not ok
if fuzz_log and os.path.exists(fuzz_log):
    for line in open(fuzz_log, encoding='utf-8', errors='replace'):
        m = re.match(r'fuzz (\S+): (ok|FAILED)', line)
        if m:
            passed += m.group(2) == 'ok'
            failed += m.group(2) != 'ok'
print(f'{passed} passed, {failed} failed')
sys.exit(0 if failed == 0 and passed > 0 else 1)
