#pragma once
// The measuring side of crdtsync_bench: timers, median/min/max over runs,
// the machine description, process memory (VmHWM and friends), the result
// table and its JSON form. Nothing here knows about replicas.

#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace crdtsync_bench {

using clock_type = std::chrono::steady_clock;

/// Seconds elapsed since `start`.
inline double seconds_since(clock_type::time_point start) {
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

/// CPU time this process has used, in seconds. The process is single
/// threaded, so across a timed section it counts the CPU the section
/// used, not the time it spent waiting for a CPU on a busy machine (nor
/// waiting for the disk).
inline double cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// A benchmark failed its own correctness check: the run is void.
struct verification_failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline void check(bool ok, const std::string& what) {
    if (!ok) throw verification_failure(what);
}

/// Median, minimum and maximum of a set of samples.
struct summary {
    double median = 0, min = 0, max = 0;
    std::vector<double> samples;

    static summary of(std::vector<double> xs) {
        summary s;
        s.samples = xs;
        if (xs.empty()) return s;
        std::sort(xs.begin(), xs.end());
        s.min = xs.front();
        s.max = xs.back();
        const auto n = xs.size();
        s.median = n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
        return s;
    }
};

/// One line of the result table.
struct result {
    std::string group;   // "merge", "bound", "wire", "scaling", "local", "memory", ...
    std::string name;    // what was measured
    std::string unit;    // "changes/s", "MB/s", "ns", "MiB", "x"
    summary value;       // in `unit`
    nlohmann::json extra = nlohmann::json::object(); // anything else worth keeping
    std::string note;
};

/// A target from the issue, checked against a measured figure.
struct target {
    std::string name;
    std::string wanted;       // human-readable: ">= 1,500,000 changes/s"
    double measured = 0;
    std::string unit;
    bool met = false;
    bool measured_at_all = false;
};

// ---------------------------------------------------------------- memory

/// The process's memory figures from /proc/self/status, in KiB.
struct memory_status {
    std::uint64_t vm_hwm_kib = 0;   // peak resident set
    std::uint64_t vm_rss_kib = 0;   // resident set now
    std::uint64_t rss_anon_kib = 0; // of which anonymous (heap)
    std::uint64_t rss_file_kib = 0; // of which file-backed (mmap of a store file)
};

inline memory_status read_memory_status() {
    memory_status m;
    std::ifstream in("/proc/self/status");
    std::string line;
    auto field = [&](const char* name, std::uint64_t& out) {
        const std::string n(name);
        if (line.compare(0, n.size(), n) == 0) out = std::stoull(line.substr(n.size()));
    };
    while (std::getline(in, line)) {
        field("VmHWM:", m.vm_hwm_kib);
        field("VmRSS:", m.vm_rss_kib);
        field("RssAnon:", m.rss_anon_kib);
        field("RssFile:", m.rss_file_kib);
    }
    return m;
}

/// ru_maxrss of this process, in KiB.
inline std::uint64_t max_rss_kib() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<std::uint64_t>(u.ru_maxrss);
}

// ---------------------------------------------------------------- machine

inline std::string first_line_matching(const char* file, const std::string& prefix) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line))
        if (line.compare(0, prefix.size(), prefix) == 0) {
            auto colon = line.find(':');
            auto v = colon == std::string::npos ? line : line.substr(colon + 1);
            v.erase(0, v.find_first_not_of(" \t"));
            return v;
        }
    return "?";
}

inline std::string filesystem_type(const std::string& path) {
    struct statfs s{};
    if (statfs(path.c_str(), &s) != 0) return "?";
    switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53: return "ext4";
    case 0x01021994: return "tmpfs";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x794c7630: return "overlayfs";
    default: {
        char buf[32];
        std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(s.f_type));
        return buf;
    }
    }
}

/// The 1, 5 and 15 minute load averages: how busy the machine was.
inline std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return in ? a + " " + b + " " + c : "?";
}

inline nlohmann::json machine_description(const std::string& data_dir) {
    nlohmann::json m;
    m["nproc"] = std::thread::hardware_concurrency();
    m["cpu_model"] = first_line_matching("/proc/cpuinfo", "model name");
    m["memory_total"] = first_line_matching("/proc/meminfo", "MemTotal");
    utsname u{};
    if (uname(&u) == 0) m["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.machine;
    m["data_dir"] = data_dir;
    m["data_dir_filesystem"] = filesystem_type(data_dir);
#if defined(__clang__)
    m["compiler"] = "clang " __clang_version__;
#elif defined(__GNUC__)
    m["compiler"] = "g++ " __VERSION__;
#endif
#ifdef NDEBUG
    m["ndebug"] = true;
#else
    m["ndebug"] = false;
#endif
    return m;
}

// ---------------------------------------------------------------- output

inline std::string with_commas(double v, int decimals = 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    std::string s = buf;
    auto dot = s.find('.');
    std::string whole = dot == std::string::npos ? s : s.substr(0, dot);
    std::string frac = dot == std::string::npos ? "" : s.substr(dot);
    bool neg = !whole.empty() && whole[0] == '-';
    if (neg) whole.erase(0, 1);
    std::string out;
    for (std::size_t i = 0; i < whole.size(); ++i) {
        if (i && (whole.size() - i) % 3 == 0) out += ',';
        out += whole[i];
    }
    return (neg ? "-" : "") + out + frac;
}

/// A figure formatted for its unit.
inline std::string format_value(double v, const std::string& unit) {
    if (unit == "x" || unit == "ratio") return with_commas(v, 2);
    if (unit == "MB/s" || unit == "MiB" || unit == "ns" || unit == "ms" || unit == "s") return with_commas(v, v < 100 ? 2 : 1);
    return with_commas(v, 0);
}

inline std::string pad(const std::string& s, std::size_t w, bool right = false) {
    if (s.size() >= w) return s;
    return right ? std::string(w - s.size(), ' ') + s : s + std::string(w - s.size(), ' ');
}

inline void print_table(std::FILE* out, const std::vector<result>& rows) {
    std::size_t wn = 9;
    for (const auto& r : rows) wn = std::max(wn, r.group.size() + 2 + r.name.size());
    std::fprintf(out, "%s  %s  %s  %s  %s  %s\n", pad("benchmark", wn).c_str(), pad("median", 14, true).c_str(),
                 pad("min", 14, true).c_str(), pad("max", 14, true).c_str(), pad("unit", 10).c_str(), "note");
    std::fprintf(out, "%s\n", std::string(wn + 2 + 14 * 3 + 6 + 10 + 2 + 4, '-').c_str());
    for (const auto& r : rows) {
        const bool single = r.value.samples.size() <= 1;
        std::fprintf(out, "%s  %s  %s  %s  %s  %s\n", pad(r.group + ": " + r.name, wn).c_str(),
                     pad(format_value(r.value.median, r.unit), 14, true).c_str(),
                     pad(single ? "" : format_value(r.value.min, r.unit), 14, true).c_str(),
                     pad(single ? "" : format_value(r.value.max, r.unit), 14, true).c_str(), pad(r.unit, 10).c_str(),
                     r.note.c_str());
    }
}

inline void print_targets(std::FILE* out, const std::vector<target>& ts) {
    std::size_t wn = 6;
    for (const auto& t : ts) wn = std::max(wn, t.name.size());
    std::fprintf(out, "%s  %s  %s  %s\n", pad("target", wn).c_str(), pad("wanted", 26).c_str(),
                 pad("measured", 22).c_str(), "verdict");
    for (const auto& t : ts) {
        std::string m = t.measured_at_all ? format_value(t.measured, t.unit) + " " + t.unit : "not measured";
        std::fprintf(out, "%s  %s  %s  %s\n", pad(t.name, wn).c_str(), pad(t.wanted, 26).c_str(), pad(m, 22).c_str(),
                     !t.measured_at_all ? "-" : t.met ? "met" : "MISSED");
    }
}

/// The same table as Markdown (for docs/benchmarks.md).
inline void print_markdown(std::FILE* out, const std::vector<result>& rows, const std::vector<target>& ts) {
    std::fprintf(out, "| benchmark | median | min | max | unit | note |\n|---|---:|---:|---:|---|---|\n");
    for (const auto& r : rows) {
        const bool single = r.value.samples.size() <= 1;
        std::fprintf(out, "| %s: %s | %s | %s | %s | %s | %s |\n", r.group.c_str(), r.name.c_str(),
                     format_value(r.value.median, r.unit).c_str(), single ? "" : format_value(r.value.min, r.unit).c_str(),
                     single ? "" : format_value(r.value.max, r.unit).c_str(), r.unit.c_str(), r.note.c_str());
    }
    std::fprintf(out, "\n| target | wanted | measured | verdict |\n|---|---|---:|---|\n");
    for (const auto& t : ts) {
        std::string m = t.measured_at_all ? format_value(t.measured, t.unit) + " " + t.unit : "not measured";
        std::fprintf(out, "| %s | %s | %s | %s |\n", t.name.c_str(), t.wanted.c_str(), m.c_str(),
                     !t.measured_at_all ? "-" : t.met ? "met" : "**missed**");
    }
}

inline nlohmann::json to_json(const result& r) {
    nlohmann::json j;
    j["group"] = r.group;
    j["name"] = r.name;
    j["unit"] = r.unit;
    j["median"] = r.value.median;
    j["min"] = r.value.min;
    j["max"] = r.value.max;
    j["runs"] = r.value.samples.size();
    j["samples"] = r.value.samples;
    if (!r.extra.empty()) j["extra"] = r.extra;
    if (!r.note.empty()) j["note"] = r.note;
    return j;
}

inline nlohmann::json to_json(const target& t) {
    nlohmann::json j;
    j["name"] = t.name;
    j["wanted"] = t.wanted;
    j["unit"] = t.unit;
    if (t.measured_at_all) {
        j["measured"] = t.measured;
        j["met"] = t.met;
    } else {
        j["measured"] = nullptr;
        j["met"] = nullptr;
    }
    return j;
}

} // namespace crdtsync_bench
