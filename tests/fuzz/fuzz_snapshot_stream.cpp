// libFuzzer target: the input as a JSON array of snapshot chunks, loaded
// chunk by chunk into a fresh replica. Every refusal must be a
// crdtsync::error; whatever was loaded before it (all of the stream, or a
// prefix) must stream out again through snapshot_writer and load into
// another fresh replica with an identical dump.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <crdtsync/backends/memory.hpp>
#include <crdtsync/replica.hpp>
#include <crdtsync/snapshot_loader.hpp>
#include <crdtsync/snapshot_writer.hpp>
#include <crdtsync/wire/json.hpp>

namespace {

// Fixed time and identities, so that a run is deterministic: shortly after
// the seed streams' HLCs, so that they pass the drift bound.
struct fixed_clock {
    std::uint64_t operator()() const noexcept { return 1'700'000'010'000; }
};
using replica_t = crdtsync::replica<crdtsync::memory_store, fixed_clock>;

crdtsync::replica_options options(std::uint8_t site_byte) {
    crdtsync::site_id::bytes_type b{};
    b.fill(site_byte);
    crdtsync::replica_options o;
    o.site = crdtsync::site_id{b};
    o.deletes = crdtsync::delete_policy::delete_wins;
    return o;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::vector<crdtsync::snapshot_chunk> chunks;
    try {
        chunks = crdtsync::wire::decode_snapshot_chunks(text);
    } catch (const crdtsync::error&) {
        return 0;
    }
    crdtsync::memory_store s1;
    replica_t r1{s1, options(0x31)};
    {
        crdtsync::snapshot_loader in{r1};
        try {
            for (const auto& c : chunks) in.push(c);
        } catch (const crdtsync::error&) {
        }
    }
    // What r1 holds streams out whole and loads into r2 as it is.
    crdtsync::memory_store s2;
    replica_t r2{s2, options(0x32)};
    crdtsync::snapshot_writer out{r1, 3};
    crdtsync::snapshot_loader in{r2};
    while (auto c = out.next()) in.push(crdtsync::wire::decode_snapshot_chunk(crdtsync::wire::encode_snapshot_chunk(*c)));
    if (!in.done() || r2.dump() != r1.dump()) std::abort();
    return 0;
}
