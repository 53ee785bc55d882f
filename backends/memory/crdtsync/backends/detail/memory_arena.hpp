#pragma once
/// \file memory_arena.hpp
/// `memory_arena`: the allocator behind one `memory_store`'s map nodes and
/// value bytes.
///
/// A store allocates two kinds of blocks, millions of them: map nodes (one
/// size) and value buffers (mostly small). The arena serves every block of
/// up to `small_limit` bytes from size classes of 16 bytes: a freed block
/// goes on its class's free list and is handed out again first; a class
/// with an empty list carves the next block off the current chunk. Larger
/// blocks go to `operator new`. Chunks are returned to the system when the
/// arena (the store) is destroyed; until then freed blocks are reused, by
/// blocks of the same class.
///
/// Not thread-safe, like the store that owns it.

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <new>
#include <vector>

#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

class memory_arena {
public:
    static constexpr std::size_t granule = 16;     // size-class step
    static constexpr std::size_t small_limit = 512; // larger blocks come from operator new
    // Blocks sit at multiples of the granule in chunks from operator new[].
    static constexpr std::size_t alignment =
        granule < __STDCPP_DEFAULT_NEW_ALIGNMENT__ ? granule : __STDCPP_DEFAULT_NEW_ALIGNMENT__;

    memory_arena() = default;
    memory_arena(const memory_arena&) = delete;
    memory_arena& operator=(const memory_arena&) = delete;

    /// A block of `size` bytes (1 or more), aligned to `alignment`.
    [[nodiscard]] void* allocate(std::size_t size) {
        if (size > small_limit) return ::operator new(size);
        const std::size_t c = class_of(size);
        if (free_block* b = free_[c]) {
            free_[c] = b->next;
            return b;
        }
        const std::size_t bytes = (c + 1) * granule;
        if (static_cast<std::size_t>(end_ - next_) < bytes) new_chunk();
        void* p = next_;
        next_ += bytes;
        return p;
    }

    /// Gives back a block from `allocate(size)`, with the same `size`.
    void deallocate(void* p, std::size_t size) noexcept {
        if (size > small_limit) {
            ::operator delete(p);
            return;
        }
        const std::size_t c = class_of(size);
        free_[c] = ::new (p) free_block{free_[c]};
    }

    /// Bytes taken from the system for small blocks (in use or free).
    [[nodiscard]] std::size_t reserved_bytes() const noexcept { return reserved_; }

private:
    struct free_block {
        free_block* next;
    };
    static constexpr std::size_t class_count = small_limit / granule;
    static constexpr std::size_t first_chunk = 16 * 1024;
    static constexpr std::size_t max_chunk = 4 * 1024 * 1024;

    [[nodiscard]] static std::size_t class_of(std::size_t size) noexcept { return size == 0 ? 0 : (size - 1) / granule; }

    // Chunks double from 16 KiB to 4 MiB: a small store stays small, a big
    // one takes few chunks. The tail of the previous chunk is left unused.
    void new_chunk() {
        const std::size_t bytes = chunks_.empty() ? first_chunk : std::min(max_chunk, 2 * chunk_bytes_);
        chunks_.reserve(chunks_.size() + 1);
        std::unique_ptr<std::byte[]> chunk(new std::byte[bytes]); // default-initialised: no zeroing
        next_ = chunk.get();
        end_ = next_ + bytes;
        chunks_.push_back(std::move(chunk));
        chunk_bytes_ = bytes;
        reserved_ += bytes;
    }

    std::array<free_block*, class_count> free_{};
    std::byte* next_ = nullptr;
    std::byte* end_ = nullptr;
    std::size_t chunk_bytes_ = 0;
    std::size_t reserved_ = 0;
    std::vector<std::unique_ptr<std::byte[]>> chunks_;
};

/// A standard allocator drawing from a `memory_arena` (for the store's map).
template <class T>
class memory_arena_allocator {
public:
    using value_type = T;

    explicit memory_arena_allocator(memory_arena& a) noexcept : arena_(&a) {}
    template <class U>
    memory_arena_allocator(const memory_arena_allocator<U>& o) noexcept : arena_(o.arena()) {}

    [[nodiscard]] T* allocate(std::size_t n) {
        static_assert(alignof(T) <= memory_arena::alignment);
        if (n > max_size()) throw std::bad_array_new_length();
        return static_cast<T*>(arena_->allocate(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept { arena_->deallocate(p, n * sizeof(T)); }
    [[nodiscard]] static constexpr std::size_t max_size() noexcept { return std::size_t(-1) / sizeof(T); }

    [[nodiscard]] memory_arena* arena() const noexcept { return arena_; }
    template <class U>
    friend bool operator==(const memory_arena_allocator& a, const memory_arena_allocator<U>& b) noexcept {
        return a.arena_ == b.arena();
    }

private:
    memory_arena* arena_;
};

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
