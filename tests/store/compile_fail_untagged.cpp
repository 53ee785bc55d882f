// Must NOT compile: a type with exactly the operations of a store but no
// opt-in tag is not a kv_store (stores opt in; shape alone is not enough).
// The test also checks the diagnostic is check_kv_store's opt-in message.
// compile_pass_tagged.cpp is the same type with the tag, and compiles.

#include <optional>
#include <string_view>

#include <crdtsync/store.hpp>

namespace {

struct read_txn {
    std::optional<std::string_view> get(std::string_view) { return std::nullopt; }
    template <class Fn>
    void scan(std::string_view, std::string_view, Fn&&) {}
};

struct write_txn : read_txn {
    void put(std::string_view, std::string_view) {}
    bool erase(std::string_view) { return false; }
    void commit() {}
    void abort() {}
};

struct untagged_store {
    read_txn read() { return {}; }
    write_txn write() { return {}; }
};

static_assert(crdtsync::check_kv_store<untagged_store>());

} // namespace

int main() {}
