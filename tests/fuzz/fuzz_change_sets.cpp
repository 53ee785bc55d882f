// libFuzzer target: decoding a JSON array of change sets either throws
// crdtsync::error or yields change sets that encode, decode back equal, and
// encode to the same text again. Anything else (another exception, a crash,
// a sanitizer report) is a bug.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <crdtsync/wire/json.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::vector<crdtsync::change_set> sets;
    try {
        sets = crdtsync::wire::decode_change_sets(text);
    } catch (const crdtsync::error&) {
        return 0;
    }
    const std::string again = crdtsync::wire::encode_change_sets(sets);
    const auto back = crdtsync::wire::decode_change_sets(again);
    if (!(back == sets)) std::abort();
    if (crdtsync::wire::encode_change_sets(back) != again) std::abort();
    return 0;
}
