#!/usr/bin/env python3
"""A translation unit compiled below C++20 stops at crdtsync's own #error,
which names C++20 as the fix, before any other error.

    language_level_check.py <include dir> <memory backend dir> <compiler> [args...]
"""
import os
import subprocess
import sys
import tempfile

include, memory, compiler = sys.argv[1], sys.argv[2], sys.argv[3:]
failures = 0
for header in ["crdtsync/crdtsync.hpp", "crdtsync/replica.hpp", "crdtsync/value.hpp", "crdtsync/backends/memory.hpp"]:
    with tempfile.NamedTemporaryFile("w", suffix=".cpp", delete=False) as f:
        f.write(f"#include <{header}>\nint main() {{}}\n")
        name = f.name
    try:
        r = subprocess.run(compiler + ["-std=c++17", "-fsyntax-only", "-I", include, "-I", memory, name],
                           capture_output=True, text=True)
    finally:
        os.unlink(name)
    errors = [l for l in r.stderr.splitlines() if "error" in l]
    ok = r.returncode != 0 and errors and "crdtsync needs C++20" in errors[0]
    print(f"{header} at -std=c++17: {'refused with the C++20 message first' if ok else 'WRONG'}")
    if not ok:
        print(r.stderr[:2000])
        failures += 1
sys.exit(1 if failures else 0)
