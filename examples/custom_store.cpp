// Plugging your own storage into crdtsync: example::custom_store (see
// custom_store.hpp) used through the kv_store concept only, the way a
// replica uses it. Prints what it reads; exits 0 when everything held.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <crdtsync/store.hpp>

#include "custom_store.hpp"

namespace {

int failures = 0;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "FAILED: %s\n", what);
        ++failures;
    }
}

// Generic code sees only the concept, like crdtsync::replica does.
template <crdtsync::kv_store Store>
void print_all(Store& store) {
    auto r = store.read();
    r.scan("", "", [](std::string_view key, std::string_view value) {
        std::printf("  %.*s = %.*s\n", static_cast<int>(key.size()), key.data(), static_cast<int>(value.size()),
                    value.data());
        return true; // keep going
    });
}

} // namespace

int main() {
    example::custom_store store;

    // A write transaction: changes become visible together, at commit.
    {
        auto w = store.write();
        w.put("fruit/banana", "yellow");
        w.put("fruit/apple", "red");
        w.put("veg/leek", "green");
        check(w.get("fruit/apple") == "red", "a write transaction reads its own writes");
        w.commit();
    }
    std::printf("after the first commit:\n");
    print_all(store);

    // A reader keeps its snapshot while a writer changes the data.
    auto before = store.read();
    {
        auto w = store.write();
        w.put("fruit/apple", "green");
        check(w.erase("veg/leek"), "erase reports a present key");
        check(!w.erase("veg/kale"), "erase reports an absent key");
        w.commit();
    }
    check(before.get("fruit/apple") == "red", "an old reader still sees its snapshot");
    check(before.get("veg/leek") == "leek" || before.get("veg/leek") == "green", "an old reader still sees erased keys");
    check(store.read().get("fruit/apple") == "green", "a new reader sees the commit");
    check(!store.read().get("veg/leek"), "a missing key is std::nullopt, not an error");

    // An uncommitted transaction leaves no trace.
    {
        auto w = store.write();
        w.put("fruit/cherry", "dark red");
    } // destroyed without commit(): aborted
    check(!store.read().get("fruit/cherry"), "destroying a write transaction discards it");

    // A bounded scan: [begin, end), in key order.
    std::string seen;
    store.read().scan("fruit/", "fruit0", [&](std::string_view key, std::string_view) {
        seen += std::string(key) + ";";
        return true;
    });
    check(seen == "fruit/apple;fruit/banana;", "scan visits [begin, end) in order");
    std::printf("after the second commit:\n");
    print_all(store);

    // One writer at a time: a second write() is a usage error.
    {
        auto w = store.write();
        try {
            auto second = store.write();
            check(false, "a second write transaction is refused");
        } catch (const crdtsync::usage_error& e) {
            check(e.code() == crdtsync::errc::invalid_argument, "the refusal is errc::invalid_argument");
        }
    }

    if (failures != 0) return EXIT_FAILURE;
    std::printf("custom_store: all checks passed\n");
    return EXIT_SUCCESS;
}
