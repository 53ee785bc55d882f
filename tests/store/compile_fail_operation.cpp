// Must NOT compile, once per operation of a store: the test defines one
// CRDTSYNC_TEST_BREAK_<operation> macro, which removes or mistypes that
// operation of an otherwise correct, tagged store. The test checks that the
// diagnostic is the one check_kv_store message naming that operation, and
// that it is the only error (no cascade onto the other operations).
// compile_pass_tagged.cpp is the same store with nothing broken.

#include <optional>
#include <string>
#include <string_view>

#include <crdtsync/store.hpp>

namespace {

struct read_txn {
#if defined(CRDTSYNC_TEST_BREAK_READ_GET)
    std::optional<std::string> get(std::string_view) { return std::nullopt; } // owns: the wrong type
#else
    std::optional<std::string_view> get(std::string_view) { return std::nullopt; }
#endif
#if !defined(CRDTSYNC_TEST_BREAK_READ_SCAN)
    template <class Fn>
    void scan(std::string_view, std::string_view, Fn&&) {}
#endif
};

struct write_txn {
#if !defined(CRDTSYNC_TEST_BREAK_WRITE_GET)
    std::optional<std::string_view> get(std::string_view) { return std::nullopt; }
#endif
#if defined(CRDTSYNC_TEST_BREAK_WRITE_SCAN)
    void scan(std::string_view, std::string_view) {} // no visitor
#else
    template <class Fn>
    void scan(std::string_view, std::string_view, Fn&&) {}
#endif
#if defined(CRDTSYNC_TEST_BREAK_PUT)
    void put(std::string_view) {} // no value
#else
    void put(std::string_view, std::string_view) {}
#endif
#if defined(CRDTSYNC_TEST_BREAK_ERASE)
    void erase(std::string_view) {} // does not say whether the key was there
#else
    bool erase(std::string_view) { return false; }
#endif
#if !defined(CRDTSYNC_TEST_BREAK_COMMIT)
    void commit() {}
#endif
#if !defined(CRDTSYNC_TEST_BREAK_ABORT)
    void abort() {}
#endif
};

struct broken_store {
    using kv_store_concept = crdtsync::kv_store_tag;
#if !defined(CRDTSYNC_TEST_BREAK_READ)
    read_txn read() { return {}; }
#endif
#if !defined(CRDTSYNC_TEST_BREAK_WRITE)
    write_txn write() { return {}; }
#endif
};

static_assert(crdtsync::check_kv_store<broken_store>());

} // namespace

int main() {}
