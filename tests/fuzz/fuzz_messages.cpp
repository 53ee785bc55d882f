// libFuzzer target: the same input as a coordinator message, a snapshot chunk
// and a single value. Each decode either throws crdtsync::error or yields a
// value that survives encode -> decode unchanged. The bounded parser must
// also accept exactly the JSON nlohmann accepts (bounds and NUL bytes
// aside), with equal values.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <crdtsync/wire/json.hpp>

namespace {

template <class T>
void round_trip(std::string_view text) {
    T x;
    try {
        x = crdtsync::wire::decode<T>(text);
    } catch (const crdtsync::error&) {
        return;
    }
    const std::string again = crdtsync::wire::encode(x);
    const T back = crdtsync::wire::decode<T>(again);
    if (!(back == x)) std::abort();
    if (crdtsync::wire::encode(back) != again) std::abort();
}

void same_as_nlohmann(std::string_view text) {
    // nlohmann's lexer reads a NUL byte as the end of the input, so it
    // accepts "1\0garbage"; RFC 8259 (and crdtsync) do not.
    if (text.find('\0') != std::string_view::npos) return;
    nlohmann::json ours;
    bool accepted = true;
    try {
        ours = crdtsync::wire::parse(text);
    } catch (const crdtsync::error& e) {
        if (e.code() == crdtsync::errc::limit_exceeded) return; // nlohmann has no bounds
        accepted = false;
    }
    if (accepted != nlohmann::json::accept(text)) std::abort();
    if (accepted && ours != nlohmann::json::parse(text)) std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    round_trip<crdtsync::message>(text);
    round_trip<crdtsync::snapshot_chunk>(text);
    round_trip<crdtsync::value>(text);
    same_as_nlohmann(text);
    return 0;
}
