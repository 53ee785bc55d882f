// Must compile: the control for compile_fail_untagged.cpp. The same store
// shape, with the opt-in, is a kv_store.

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

struct tagged_store {
    using kv_store_concept = crdtsync::kv_store_tag;
    read_txn read() { return {}; }
    write_txn write() { return {}; }
};

static_assert(crdtsync::check_kv_store<tagged_store>());
static_assert(crdtsync::kv_store<tagged_store>);

} // namespace

int main() {}
