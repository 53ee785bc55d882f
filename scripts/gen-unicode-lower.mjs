#!/usr/bin/env node
// Generates include/crdtsync/detail/unicode_lower_table.hpp: the tables behind
// detail::js_to_lower, a C++ copy of JavaScript's String.prototype.toLowerCase
// (the NOCASE collation of Quereus compares a.toLowerCase() === b.toLowerCase()).
//
//   node scripts/gen-unicode-lower.mjs            # writes the header
//   node scripts/gen-unicode-lower.mjs --check    # verifies only, writes nothing
//
// Node is the reference: every table is derived from this Node's own
// toLowerCase and regexp property data (both come from its ICU), and before
// writing, a JS model of the C++ algorithm run over the tables is compared with
// toLowerCase on every code point, on four Final_Sigma probes per code point and
// on random strings. Any difference aborts without writing.
//
// The header is checked in: neither the build nor CI needs Node. Rerun this
// script (and scripts/gen-unicode-lower-reference.mjs) to move to a newer
// Unicode version.

import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out_path = join(root, 'include', 'crdtsync', 'detail', 'unicode_lower_table.hpp');
const check_only = process.argv.includes('--check');

const MAX = 0x10ffff;
const is_surrogate = (c) => c >= 0xd800 && c <= 0xdfff;
const cps = (s) => Array.from(s, (ch) => ch.codePointAt(0));
const hex = (c, w = 4) => '0x' + c.toString(16).toUpperCase().padStart(w, '0');

function fail(msg) {
    console.error('gen-unicode-lower: ' + msg);
    process.exit(1);
}

// 1. The per-code-point lowering: one code point (a delta) or several.
const delta = new Map(); // cp -> lower(cp) - cp, for one-code-point results != cp
const specials = []; // [cp, [cps...]] for results longer than one code point
for (let c = 0; c <= MAX; ++c) {
    if (is_surrogate(c)) continue;
    const s = String.fromCodePoint(c);
    const l = s.toLowerCase();
    if (l === s) continue;
    const lc = cps(l);
    if (lc.length === 1) delta.set(c, lc[0] - c);
    else specials.push([c, lc]);
}

// Runs of code points with the same delta: stride 1 (a contiguous block), or
// stride 2 (alternating upper/lower pairs, e.g. U+0100..U+012E), where every
// code point of the other parity inside the run maps to itself, so runs never
// overlap and a binary search on `first` finds the only candidate.
const mapped = [...delta.keys()].sort((a, b) => a - b);
const runs = [];
for (let k = 0; k < mapped.length; ) {
    const first = mapped[k];
    const d = delta.get(first);
    let last = first;
    let stride = 1;
    let j = k + 1;
    if (j < mapped.length && delta.get(mapped[j]) === d) {
        if (mapped[j] === first + 1) stride = 1;
        else if (mapped[j] === first + 2 && !delta.has(first + 1)) stride = 2;
        else stride = 0;
        if (stride) {
            while (j < mapped.length && mapped[j] === last + stride && delta.get(mapped[j]) === d &&
                   (stride === 1 || !delta.has(last + 1))) {
                last = mapped[j];
                ++j;
            }
        } else {
            stride = 1;
        }
    }
    runs.push({ first, last, delta: d, stride });
    k = j;
}

// 2. The Final_Sigma context: Cased and Case_Ignorable (Unicode 3.13,
// DerivedCoreProperties.txt). ECMAScript exposes both as binary properties; the
// derivation from general categories (Cased = Lowercase | Uppercase | Lt,
// Case_Ignorable = Mn | Me | Cf | Lm | Sk | Word_Break MidLetter, MidNumLet,
// Single_Quote) is cross-checked and any difference is reported.
const re_cased = /^\p{Cased}$/u;
const re_ignorable = /^\p{Case_Ignorable}$/u;
const re_cased_derived = /^[\p{Lowercase}\p{Uppercase}\p{Lt}]$/u;
const re_ignorable_cat = /^[\p{Mn}\p{Me}\p{Cf}\p{Lm}\p{Sk}]$/u;
// WordBreakProperty.txt: MidLetter, MidNumLet, Single_Quote.
const word_break_mid = new Set([0x0027, 0x002e, 0x003a, 0x00b7, 0x0387, 0x055f, 0x05f4, 0x2018, 0x2019, 0x2024,
                                0x2027, 0xfe13, 0xfe52, 0xfe55, 0xff07, 0xff0e, 0xff1a]);
const cased = new Uint8Array(MAX + 1);
const ignorable = new Uint8Array(MAX + 1);
const derivation_differs = [];
for (let c = 0; c <= MAX; ++c) {
    if (is_surrogate(c)) continue;
    const s = String.fromCodePoint(c);
    cased[c] = re_cased.test(s) ? 1 : 0;
    ignorable[c] = re_ignorable.test(s) ? 1 : 0;
    const dc = re_cased_derived.test(s) ? 1 : 0;
    const di = re_ignorable_cat.test(s) || word_break_mid.has(c) ? 1 : 0;
    if (dc !== cased[c] || di !== ignorable[c]) derivation_differs.push(hex(c));
}
if (derivation_differs.length)
    console.warn('note: \\p{Cased}/\\p{Case_Ignorable} differ from the category derivation at ' +
                 derivation_differs.join(' ') + ' (the properties are used)');

function ranges_of(flags) {
    const r = [];
    for (let c = 0; c <= MAX; ++c) {
        if (!flags[c]) continue;
        const first = c;
        while (c + 1 <= MAX && flags[c + 1]) ++c;
        r.push([first, c]);
    }
    return r;
}
const cased_ranges = ranges_of(cased);
const ignorable_ranges = ranges_of(ignorable);

// 3. A JS model of the C++ algorithm over exactly these tables, checked
// against toLowerCase before anything is written.
function in_ranges(r, c) {
    let lo = 0, hi = r.length;
    while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (r[mid][0] <= c) lo = mid + 1;
        else hi = mid;
    }
    return lo > 0 && c <= r[lo - 1][1];
}
function model_lower_cp(c) {
    let lo = 0, hi = runs.length;
    while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (runs[mid].first <= c) lo = mid + 1;
        else hi = mid;
    }
    if (lo > 0) {
        const r = runs[lo - 1];
        if (c <= r.last && (c - r.first) % r.stride === 0) return [c + r.delta];
    }
    for (const [sc, seq] of specials)
        if (sc === c) return seq;
    return [c];
}
// ICU's rule (ucase.cpp isFollowedByCasedLetter): skip case-ignorable code
// points, whether or not they are also cased, then look at the first other one.
function model_cased_at(a, i, dir) {
    for (; i >= 0 && i < a.length; i += dir) {
        if (in_ranges(ignorable_ranges, a[i])) continue;
        return in_ranges(cased_ranges, a[i]);
    }
    return false;
}
function model_lower(s) {
    const a = cps(s);
    let r = '';
    for (let i = 0; i < a.length; ++i) {
        if (a[i] === 0x03a3)
            r += model_cased_at(a, i - 1, -1) && !model_cased_at(a, i + 1, 1) ? '\u03c2' : '\u03c3';
        else r += String.fromCodePoint(...model_lower_cp(a[i]));
    }
    return r;
}
let checked = 0;
function verify(s) {
    ++checked;
    const want = s.toLowerCase();
    const got = model_lower(s);
    if (got !== want)
        fail(`model differs from toLowerCase on ${JSON.stringify(s)}: ${JSON.stringify(got)} != ${
            JSON.stringify(want)}`);
}
const SIGMA = '\u03a3';
for (let c = 0; c <= MAX; ++c) {
    if (is_surrogate(c)) continue;
    const s = String.fromCodePoint(c);
    verify(s);
    verify('A' + s + SIGMA);
    verify('1' + s + SIGMA);
    verify('A' + SIGMA + s);
    verify('A' + SIGMA + s + 'A');
}
// Random strings drawn mostly from the code points the rule looks at.
let seed = 0x5eed1234;
const rand = () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (arr) => arr[Math.floor(rand() * arr.length)];
const pool_cased = cased_ranges.flatMap(([a, b]) => [a, b]);
const pool_ignorable = ignorable_ranges.flatMap(([a, b]) => [a, b]);
for (let n = 0; n < 200000; ++n) {
    const len = 1 + Math.floor(rand() * 8);
    const a = [];
    for (let k = 0; k < len; ++k) {
        const r = rand();
        let c;
        if (r < 0.3) c = 0x03a3;
        else if (r < 0.5) c = pick(pool_cased);
        else if (r < 0.75) c = pick(pool_ignorable);
        else if (r < 0.85) c = pick([0x20, 0x31, 0x41, 0x61, 0x0130, 0x03c3]);
        else do c = Math.floor(rand() * (MAX + 1)); while (is_surrogate(c));
        a.push(c);
    }
    verify(String.fromCodePoint(...a));
}

// 4. The header.
const nodever = process.version;
const unicode = process.versions.unicode;
const icu = process.versions.icu;
const utf8_escaped = (seq) =>
    Array.from(Buffer.from(String.fromCodePoint(...seq), 'utf8'), (b) => '\\x' + b.toString(16).toUpperCase().padStart(2, '0'))
        .join('');
const pack = (items, per_line) => {
    const lines = [];
    for (let k = 0; k < items.length; k += per_line) lines.push('    ' + items.slice(k, k + per_line).join(', ') + ',');
    return lines.join('\n');
};
const diff_count = delta.size + specials.length;

const text = `#pragma once
// GENERATED FILE, do not edit: written by scripts/gen-unicode-lower.mjs from
// Node ${nodever} (ICU ${icu}, Unicode ${unicode}) and checked by it against that
// Node's String.prototype.toLowerCase. Rerun the script to regenerate.
//
// ${diff_count} code points lower to something other than themselves: ${delta.size} to one
// code point (${runs.length} runs below), ${specials.length} to several. Cased: ${cased_ranges.length} ranges;
// Case_Ignorable: ${ignorable_ranges.length} ranges.

#include <cstdint>
#include <string_view>

#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

/// The Unicode version of the tables below (Node's \`process.versions.unicode\`).
inline constexpr std::string_view unicode_lower_version = "${unicode}";

/// A run of code points lowered by adding \`delta\`: every code point of
/// [first, last] when \`stride\` is 1, every other one (first, first + 2, ...)
/// when it is 2; the code points in between lower to themselves.
struct unicode_lower_run {
    std::uint32_t first;
    std::uint32_t last;
    std::int32_t delta;
    std::uint32_t stride;
};

/// The one-code-point lowerings, sorted by \`first\`, disjoint.
inline constexpr unicode_lower_run unicode_lower_runs[] = {
${pack(runs.map((r) => `{${hex(r.first)}, ${hex(r.last)}, ${r.delta}, ${r.stride}}`), 3)}
};

/// A code point whose lowering is longer than one code point, as UTF-8.
struct unicode_lower_special {
    std::uint32_t cp;
    std::string_view utf8;
};

inline constexpr unicode_lower_special unicode_lower_specials[] = {
${pack(specials.map(([c, seq]) => `{${hex(c)}, "${utf8_escaped(seq)}"}`), 1)}
};

/// An inclusive range of code points.
struct unicode_cp_range {
    std::uint32_t first;
    std::uint32_t last;
};

/// Cased (Unicode 3.13, D135), sorted, disjoint.
inline constexpr unicode_cp_range unicode_cased[] = {
${pack(cased_ranges.map(([a, b]) => `{${hex(a)}, ${hex(b)}}`), 5)}
};

/// Case_Ignorable (Unicode 3.13, D136), sorted, disjoint.
inline constexpr unicode_cp_range unicode_case_ignorable[] = {
${pack(ignorable_ranges.map(([a, b]) => `{${hex(a)}, ${hex(b)}}`), 5)}
};

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
`;

console.log(`Node ${nodever}, ICU ${icu}, Unicode ${unicode}: ${diff_count} code points differ (${delta.size} simple in ${
    runs.length} runs, ${specials.length} longer); ${cased_ranges.length} cased and ${
    ignorable_ranges.length} case-ignorable ranges; ${checked} strings verified`);
if (check_only) {
    console.log('--check: nothing written');
} else {
    writeFileSync(out_path, text);
    console.log(`wrote ${out_path} (${Buffer.byteLength(text)} bytes)`);
}
