#!/usr/bin/env python3
"""Checks that the README's quick start is examples/quickstart.cpp verbatim.

The README holds the file between the markers
<!-- quickstart begin --> and <!-- quickstart end --> in a ```cpp block.
"""
import re, sys
readme, example = sys.argv[1], sys.argv[2]
text = open(readme, encoding='utf-8').read()
m = re.search(r'<!-- quickstart begin -->\s*```cpp\n(.*?)```\s*<!-- quickstart end -->', text, re.S)
if not m:
    print('README.md has no quick start block between the markers')
    sys.exit(1)
code = open(example, encoding='utf-8').read()
if m.group(1) != code:
    print('README.md quick start differs from examples/quickstart.cpp')
    sys.exit(1)
print('README quick start == examples/quickstart.cpp')
