#pragma once
/// \file memory.hpp
/// `crdtsync::memory_store`: an ordered in-memory `kv_store`.
///
/// The data lives in one `std::map` ordered by unsigned bytes, for scans. A
/// hash index beside it makes point lookups cost a probe rather than a walk
/// down the tree, and a few remembered positions of recent writes let keys
/// written in ascending runs (rows in key order, the change log) be found
/// and inserted next to them without either. A write
/// transaction changes the map in place and keeps an undo log, so `abort()`
/// costs as much as the changes made and `commit()` is cheap. Isolation is
/// multi-version: when a write touches a key, the committed version it
/// replaces is kept aside for as long as an open read transaction may still
/// see it, and dropped when the last such reader ends. With no reader open,
/// no old version is kept at all. So a read transaction sees the state as of
/// its start, and the views it hands out stay valid until it ends, without
/// ever copying the map.
///
/// Memory: map nodes and values of up to 512 bytes come from the store's own
/// arena (detail/memory_arena.hpp), in size classes of 16 bytes; what a
/// write frees is reused by later writes, and returned to the system when
/// the store is destroyed. `stats().arena_bytes` shows how much it holds.
///
/// Threading: a `memory_store` and all its transactions are used by one
/// thread at a time (no internal locking). Transactions must end before the
/// store is destroyed.

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <crdtsync/backends/detail/memory_arena.hpp>
#include <crdtsync/detail/endian.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/store.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

namespace detail {

// A byte buffer whose bytes never move: moving the buffer moves only the
// pointer. Views handed to readers therefore survive the buffer travelling
// between the map, the undo log and the version history. The bytes come
// from the store's arena, which outlives every buffer.
class memory_bytes {
public:
    memory_bytes() noexcept = default;
    memory_bytes(memory_arena& arena, std::string_view bytes) : size_(bytes.size()) {
        if (size_ != 0) {
            data_ = static_cast<char*>(arena.allocate(size_));
            arena_ = &arena;
            std::memcpy(data_, bytes.data(), size_);
        }
    }
    memory_bytes(memory_bytes&& o) noexcept
        : arena_(std::exchange(o.arena_, nullptr)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    memory_bytes& operator=(memory_bytes&& o) noexcept {
        if (this != &o) {
            reset();
            arena_ = std::exchange(o.arena_, nullptr);
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    memory_bytes(const memory_bytes&) = delete;
    memory_bytes& operator=(const memory_bytes&) = delete;
    ~memory_bytes() { reset(); }

    [[nodiscard]] std::string_view view() const noexcept { return {data_, size_}; }
    void reset() noexcept {
        if (data_ != nullptr) arena_->deallocate(data_, size_);
        arena_ = nullptr;
        data_ = nullptr;
        size_ = 0;
    }

private:
    memory_arena* arena_ = nullptr;
    char* data_ = nullptr;
    std::size_t size_ = 0;
};

// One committed version of a key.
struct memory_version {
    memory_bytes value;
    std::uint64_t since = 0; // the commit that wrote it; 0 = the key never existed
    bool present = false;    // false: the key was erased at `since`
};

// A key's versions: the newest one inline, older ones kept for readers.
struct memory_entry {
    // The newest version: the committed one, or the pending one of the open
    // write transaction when `since == memory_pending`.
    memory_bytes value;
    std::uint64_t since = 0;
    std::uint32_t undo = 0; // index into the undo log while pending
    bool present = false;
    // Older committed versions still visible to some open reader, oldest
    // first. Null when there are none.
    std::unique_ptr<std::vector<memory_version>> history;
};

inline constexpr std::uint64_t memory_pending = std::numeric_limits<std::uint64_t>::max();

// A hash index over the map's nodes, so that point lookups cost a couple of
// cache misses instead of a walk down a tree of a million nodes. Open
// addressing with linear probing and backward-shift deletion; a slot holds
// the key's hash (never 0; 0 marks an empty slot) and the map iterator.
template <class Iterator>
class memory_index {
public:
    memory_index() : seed_(random_seed()) {}

    // A multiply-xorshift mix of the key's 8-byte words (the last one
    // overlapping): keys are short, and a call into a byte-wise hash costs
    // more than the probe. Keyed with a random seed per store: replicas
    // store keys their peers chose, and the probe runs must not be theirs to
    // lengthen. (The index's layout is never observable: order is the map's.)
    [[nodiscard]] std::size_t hash(std::string_view key) const noexcept {
        constexpr std::uint64_t k = 0x9E3779B97F4A7C15ull;
        const std::size_t n = key.size();
        const char* p = key.data();
        std::uint64_t h = (k ^ n) + seed_;
        auto mix = [&h](std::uint64_t w) {
            h = (h ^ w) * k;
            h ^= h >> 29;
        };
        if (n >= 8) {
            for (std::size_t i = 0; i + 8 < n; i += 8) mix(load_native<std::uint64_t>(p + i));
            mix(load_native<std::uint64_t>(p + n - 8));
        } else {
            std::uint64_t w = 0;
            for (std::size_t i = 0; i < n; ++i) w = (w << 8) | static_cast<unsigned char>(p[i]);
            mix(w);
        }
        h *= 0xBF58476D1CE4E5B9ull;
        h ^= h >> 32;
        const auto out = static_cast<std::size_t>(h);
        return out == 0 ? 1 : out;
    }

    // The node of `key`, or `missing` when absent.
    [[nodiscard]] Iterator find(std::string_view key, std::size_t h, Iterator missing) const noexcept {
        if (slots_.empty()) return missing;
        for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
            const slot& s = slots_[i];
            if (s.hash == 0) return missing;
            if (s.hash == h && same_bytes(s.it->first, key)) return s.it;
        }
    }

    // Makes room for one more key; the only operation that allocates.
    void reserve_one() {
        if ((size_ + 1) * 2 <= slots_.size()) return;
        std::vector<slot> bigger(slots_.empty() ? 64 : slots_.size() * 2);
        const std::size_t mask = bigger.size() - 1;
        for (const slot& s : slots_) {
            if (s.hash == 0) continue;
            std::size_t i = s.hash & mask;
            while (bigger[i].hash != 0) i = (i + 1) & mask;
            bigger[i] = s;
        }
        slots_.swap(bigger);
        mask_ = mask;
    }

    // Adds a key known to be absent. Needs `reserve_one()` first.
    void insert(std::size_t h, Iterator it) noexcept {
        std::size_t i = h & mask_;
        while (slots_[i].hash != 0) i = (i + 1) & mask_;
        slots_[i] = slot{h, it};
        ++size_;
    }

    // Removes a key known to be present.
    void erase(std::string_view key) noexcept {
        const std::size_t h = hash(key);
        std::size_t i = h & mask_;
        while (!(slots_[i].hash == h && same_bytes(slots_[i].it->first, key))) i = (i + 1) & mask_;
        // Shift later members of the probe run back into the hole.
        for (std::size_t j = (i + 1) & mask_; slots_[j].hash != 0; j = (j + 1) & mask_) {
            const std::size_t home = slots_[j].hash & mask_;
            // Move j into the hole at i unless its home lies in (i, j].
            const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays) {
                slots_[i] = slots_[j];
                i = j;
            }
        }
        slots_[i] = slot{};
        --size_;
    }

private:
    [[nodiscard]] static std::uint64_t random_seed() {
        std::random_device rd;
        return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    }
    struct slot {
        std::size_t hash = 0;
        Iterator it{};
    };
    std::vector<slot> slots_;
    std::size_t mask_ = 0;
    std::size_t size_ = 0;
    std::uint64_t seed_;
};

} // namespace detail

/// Counters that show what a `memory_store` keeps, for tests and monitoring.
struct memory_store_stats {
    std::size_t nodes = 0;             ///< map nodes, including erased keys kept for readers
    std::size_t retained_versions = 0; ///< old versions kept for open read transactions
    std::size_t open_readers = 0;      ///< read transactions currently open
    std::size_t arena_bytes = 0;       ///< memory taken for map nodes and values of up to 512 bytes, in use or free for reuse
};

/// An ordered in-memory `kv_store` with snapshot isolation.
///
/// ```
/// crdtsync::memory_store store;
/// {
///     auto w = store.write();
///     w.put("greeting", "hello");
///     w.commit();
/// }
/// auto r = store.read();
/// assert(r.get("greeting") == "hello");
/// ```
/// One write transaction at a time: opening a second while one is open
/// throws `usage_error` (`errc::invalid_argument`). Any number of read
/// transactions may be open, before, during and after a write. Keys and
/// values are arbitrary byte strings (the empty key included); keys compare
/// as unsigned bytes.
///
/// Not copyable or movable: transactions refer to their store. Not
/// thread-safe: one thread at a time.
class memory_store {
    // Unsigned byte order, compared inline (std::less<> would call memcmp).
    struct key_less {
        using is_transparent = void;
        bool operator()(std::string_view a, std::string_view b) const noexcept { return detail::compare_bytes(a, b) < 0; }
    };
    using map_type = std::map<std::string, detail::memory_entry, key_less,
                              detail::memory_arena_allocator<std::pair<const std::string, detail::memory_entry>>>;
    using iterator = map_type::iterator;
    using index_type = detail::memory_index<iterator>;

    struct undo_record {
        iterator it;
        detail::memory_version old; // the committed version the write replaced
    };

    // Open read transactions: (snapshot, count), ascending by snapshot.
    struct reader_count {
        std::uint64_t snapshot;
        std::size_t count;
    };

public:
    /// The opt-in to `kv_store`.
    using kv_store_concept = kv_store_tag;

    class read_txn;
    class write_txn;

    /// An empty store.
    memory_store() = default;
    memory_store(const memory_store&) = delete;
    memory_store& operator=(const memory_store&) = delete;
    ~memory_store() = default;

    /// Opens a read transaction: a snapshot of the committed state as of now.
    [[nodiscard]] read_txn read();

    /// Opens the write transaction. Throws `usage_error` when one is open.
    [[nodiscard]] write_txn write();

    /// What the store currently keeps.
    [[nodiscard]] memory_store_stats stats() const noexcept {
        memory_store_stats s;
        s.nodes = map_.size();
        s.retained_versions = retained_;
        for (const auto& r : readers_) s.open_readers += r.count;
        s.arena_bytes = arena_.reserved_bytes();
        return s;
    }

private:
    // ---- lookups -----------------------------------------------------------

    // The version of `e` a reader of `snapshot` sees.
    [[nodiscard]] std::optional<std::string_view> visible(const detail::memory_entry& e,
                                                          std::uint64_t snapshot) const noexcept {
        if (e.since != detail::memory_pending) {
            if (e.since <= snapshot) return e.present ? std::optional(e.value.view()) : std::nullopt;
        } else {
            const auto& old = undo_[e.undo].old;
            if (old.since <= snapshot) return old.present ? std::optional(old.value.view()) : std::nullopt;
        }
        if (e.history) {
            for (auto h = e.history->rbegin(); h != e.history->rend(); ++h) {
                if (h->since <= snapshot) return h->present ? std::optional(h->value.view()) : std::nullopt;
            }
        }
        return std::nullopt; // the key did not exist yet at `snapshot`
    }

    [[nodiscard]] iterator missing() const noexcept {
        // The end iterator of the (mutable) map; lookups are logically const.
        return const_cast<map_type&>(map_).end();
    }

    // Fingers: positions of recent accesses, one per leading key byte.
    // Replicas write in ascending runs (rows in key order, the change log by
    // sequence number), one run per leading byte, interleaved; a key at or
    // just after its byte's finger is found, or known absent, or placed,
    // without hashing or walking the tree.
    static constexpr std::size_t finger_count = 256;
    static constexpr std::size_t no_finger = finger_count;
    [[nodiscard]] static std::size_t finger_of(std::string_view key) noexcept {
        return key.empty() ? 0 : static_cast<unsigned char>(key.front());
    }

    struct finger {
        iterator node;           // end: unused
        iterator next;           // the node after `node`, once known
        bool next_known = false; // found on first need, then kept exact
    };

    struct near_result {
        iterator found;     // the key's node, or end
        iterator hint;      // when absent: the node it goes before
        std::size_t finger; // the finger that decided, or no_finger
    };

    [[nodiscard]] near_result near_fingers(std::string_view key) const noexcept {
        const iterator end = missing();
        const std::size_t i = finger_of(key);
        finger& f = fingers_[i];
        if (f.node == end) return {end, end, no_finger};
        const int c = detail::compare_bytes(f.node->first, key);
        if (c == 0) return {f.node, end, i};
        if (c > 0) return {end, end, no_finger};
        bool looked_up = false;
        if (!f.next_known) {
            // Finding the next node may climb the tree: worth it while
            // the accesses run in order, not when they jump at random.
            if (!lazy_next_worthwhile()) return {end, end, no_finger};
            f.next = std::next(f.node);
            f.next_known = true;
            looked_up = true;
        }
        const int d = f.next == end ? 1 : detail::compare_bytes(f.next->first, key);
        if (looked_up) lazy_next_outcome(d >= 0);
        if (d == 0) return {f.next, end, i};
        if (d > 0) return {end, f.next, i};
        return {end, end, no_finger};
    }

    // Lookups of the node after a finger that did not help in a row; past a
    // few, they are skipped but for an occasional probe.
    [[nodiscard]] bool lazy_next_worthwhile() const noexcept {
        return lazy_next_failures_ < 8 || (++lazy_next_probe_ & 31u) == 0;
    }
    void lazy_next_outcome(bool helped) const noexcept {
        if (helped) lazy_next_failures_ = 0;
        else if (lazy_next_failures_ < 8) ++lazy_next_failures_;
    }

    void set_finger(std::size_t i, iterator node) noexcept { fingers_[i] = finger{node, {}, false}; }
    void move_finger(iterator node) noexcept { set_finger(finger_of(node->first), node); }

    // Lookup without moving the fingers (readers).
    [[nodiscard]] iterator find(std::string_view key) const noexcept {
        const auto near = near_fingers(key);
        if (near.finger != no_finger) return near.found;
        return index_.find(key, index_.hash(key), missing());
    }

    // Lookup by the write transaction: the fingers follow its writes.
    [[nodiscard]] iterator find_for_write(std::string_view key) noexcept {
        const auto near = near_fingers(key);
        if (near.finger != no_finger) {
            if (near.found != map_.end() && near.found != fingers_[near.finger].node) set_finger(near.finger, near.found);
            return near.found;
        }
        const auto it = index_.find(key, index_.hash(key), map_.end());
        if (it != map_.end()) move_finger(it);
        return it;
    }

    // The node of `key`, inserted (with no version) when absent; `fresh`
    // tells which.
    [[nodiscard]] iterator find_or_insert(std::string_view key, bool& fresh) {
        fresh = false;
        const auto near = near_fingers(key);
        if (near.finger != no_finger && near.found != map_.end()) {
            if (near.found != fingers_[near.finger].node) set_finger(near.finger, near.found);
            return near.found;
        }
        const std::size_t h = index_.hash(key);
        iterator hint = near.hint;
        if (near.finger == no_finger) {
            if (auto it = index_.find(key, h, map_.end()); it != map_.end()) {
                move_finger(it);
                return it;
            }
            // Absent, and no finger knows where it goes: appends past the
            // last key are placed at once, the rest by a walk down the tree.
            hint = map_.empty() || detail::compare_bytes(map_.rbegin()->first, key) < 0 ? map_.end() : map_.lower_bound(key);
        }
        index_.reserve_one();
        const auto it = map_.emplace_hint(hint, std::piecewise_construct, std::forward_as_tuple(key),
                                          std::forward_as_tuple());
        index_.insert(h, it);
        // The new node sits right before `hint`: the finger on the node
        // before it (if any: fingers sit on nodes of their own byte) had
        // `hint` next and now has the new node.
        if (it != map_.begin()) {
            const auto before = std::prev(it);
            finger& f = fingers_[finger_of(before->first)];
            if (f.node == before && f.next_known) f.next = it;
        }
        fingers_[finger_of(key)] = finger{it, hint, true};
        fresh = true;
        return it;
    }

    void erase_node(iterator it) noexcept {
        if (finger& f = fingers_[finger_of(it->first)]; f.node == it) f = finger{map_.end(), {}, false};
        if (it != map_.begin()) {
            const auto before = std::prev(it);
            finger& f = fingers_[finger_of(before->first)];
            if (f.node == before && f.next_known && f.next == it) f.next_known = false;
        }
        index_.erase(it->first);
        map_.erase(it);
    }

    // ---- the write transaction ---------------------------------------------

    // Replaces the newest version of `it` by `value` (nullopt: erased). The
    // first touch in a transaction moves the committed version to the undo
    // log, where readers still find it.
    void write_version(iterator it, bool fresh, std::optional<std::string_view> value) {
        auto& e = it->second;
        const bool first_touch = e.since != detail::memory_pending;
        // Everything that can fail comes first, before anything moves: on a
        // failure the key keeps its version and a node made for it goes.
        detail::memory_bytes bytes;
        try {
            if (value) bytes = detail::memory_bytes(arena_, *value);
            if (first_touch) {
                if (undo_.size() >= std::numeric_limits<std::uint32_t>::max()) {
                    detail::raise(errc::invalid_argument,
                                  "memory_store: a write transaction may touch at most 4294967295 keys");
                }
                if (undo_.size() == undo_.capacity()) undo_.reserve(std::max<std::size_t>(64, 2 * undo_.capacity()));
            }
        } catch (...) {
            if (fresh) erase_node(it);
            throw;
        }
        if (first_touch) {
            undo_.push_back(undo_record{it, detail::memory_version{std::move(e.value), e.since, e.present}}); // capacity reserved
            e.undo = static_cast<std::uint32_t>(undo_.size() - 1);
            e.since = detail::memory_pending;
        }
        e.value = std::move(bytes);
        e.present = value.has_value();
    }

    void begin_write() {
        if (writing_) {
            detail::raise(errc::invalid_argument,
                          "memory_store: a write transaction is already open (one writer at a time)");
        }
        writing_ = true;
    }

    [[nodiscard]] static bool has_history(const detail::memory_entry& e) noexcept {
        return e.history && !e.history->empty();
    }

    // Whether the version `rec` replaced must stay for an open reader: one
    // whose snapshot lies in [old.since, new version). Every open snapshot
    // is older than the new version, so the newest decides. An erased
    // version with nothing below it needs no record: "not found" reads the
    // same.
    [[nodiscard]] bool must_keep(const undo_record& rec) const noexcept {
        return !readers_.empty() && rec.old.since != 0 && readers_.back().snapshot >= rec.old.since &&
               (rec.old.present || has_history(rec.it->second));
    }

    void commit_write() {
        // First allocate everything keeping old versions needs, so that the
        // commit itself cannot fail half-way. On failure the transaction is
        // aborted whole (the spare capacity is harmless).
        try {
            for (const auto& rec : undo_) {
                if (!must_keep(rec)) continue;
                auto& e = rec.it->second;
                if (!e.history) {
                    versioned_.reserve(versioned_.size() + 1);
                    e.history = std::make_unique<std::vector<detail::memory_version>>();
                    versioned_.push_back(rec.it);
                }
                e.history->reserve(e.history->size() + 1);
            }
        } catch (...) {
            abort_write();
            throw;
        }
        const std::uint64_t v = version_ + 1;
        for (auto& rec : undo_) {
            auto& e = rec.it->second;
            if (must_keep(rec)) {
                e.history->push_back(std::move(rec.old)); // capacity reserved above
                ++retained_;
            }
            e.since = v;
            if (!e.present && !e.history) erase_node(rec.it);
        }
        undo_.clear();
        version_ = v;
        writing_ = false;
    }

    void abort_write() noexcept {
        for (auto rec = undo_.rbegin(); rec != undo_.rend(); ++rec) {
            auto& e = rec->it->second;
            e.value = std::move(rec->old.value);
            e.since = rec->old.since;
            e.present = rec->old.present;
            if (!e.present && !e.history) erase_node(rec->it);
        }
        undo_.clear();
        writing_ = false;
    }

    // ---- readers -----------------------------------------------------------

    [[nodiscard]] std::uint64_t open_reader() {
        if (!readers_.empty() && readers_.back().snapshot == version_) {
            ++readers_.back().count;
        } else {
            readers_.push_back(reader_count{version_, 1});
        }
        return version_;
    }

    void close_reader(std::uint64_t snapshot) noexcept {
        // Snapshots are opened in ascending order, so the list is sorted.
        auto lo = readers_.begin();
        auto hi = readers_.end();
        while (lo < hi) {
            auto mid = lo + (hi - lo) / 2;
            if (mid->snapshot < snapshot) lo = mid + 1;
            else hi = mid;
        }
        if (lo == readers_.end() || lo->snapshot != snapshot) return; // cannot happen
        if (--lo->count != 0) return;
        const bool oldest = lo == readers_.begin();
        readers_.erase(lo);
        // Collect when the oldest snapshot goes (that frees the most), or
        // when the kept versions have doubled since the last collection, so
        // that the work stays proportional to what is kept.
        if (!versioned_.empty() && (oldest || readers_.empty() || retained_ >= 2 * retained_after_collect_)) {
            collect();
        }
    }

    // Is any open reader's snapshot in [from, to)?
    [[nodiscard]] bool reader_in(std::uint64_t from, std::uint64_t to) const noexcept {
        auto lo = readers_.begin();
        auto hi = readers_.end();
        while (lo < hi) {
            auto mid = lo + (hi - lo) / 2;
            if (mid->snapshot < from) lo = mid + 1;
            else hi = mid;
        }
        return lo != readers_.end() && lo->snapshot < to;
    }

    // Drops every old version no open reader can see, and the map nodes of
    // erased keys left with no version. Allocates nothing.
    void collect() noexcept {
        std::size_t kept_nodes = 0;
        for (auto it : versioned_) {
            auto& e = it->second;
            auto& hist = *e.history;
            // The version above history[i] is history[i + 1], then the undo
            // record (while pending), then the entry itself.
            std::uint64_t above = e.since != detail::memory_pending ? e.since : undo_[e.undo].old.since;
            std::size_t out = hist.size();
            // Walk newest to oldest, compacting the survivors to the end.
            for (std::size_t i = hist.size(); i-- > 0;) {
                const std::uint64_t since = hist[i].since;
                if (reader_in(since, above)) {
                    --out;
                    if (out != i) hist[out] = std::move(hist[i]);
                }
                above = since;
            }
            // An erased version at the bottom reads like no version at all.
            while (out < hist.size() && !hist[out].present) ++out;
            retained_ -= out;
            hist.erase(hist.begin(), hist.begin() + static_cast<std::ptrdiff_t>(out));
            if (!hist.empty()) {
                versioned_[kept_nodes++] = it;
                continue;
            }
            e.history.reset();
            if (!e.present && e.since != detail::memory_pending) erase_node(it);
        }
        versioned_.resize(kept_nodes);
        retained_after_collect_ = retained_ == 0 ? 1 : retained_;
    }

    static std::array<finger, finger_count> unused_fingers(map_type& m) noexcept {
        std::array<finger, finger_count> a;
        a.fill(finger{m.end(), {}, false});
        return a;
    }

    detail::memory_arena arena_; // first: outlives every node and value
    map_type map_{detail::memory_arena_allocator<map_type::value_type>(arena_)};
    index_type index_;
    mutable std::array<finger, finger_count> fingers_ = unused_fingers(map_);
    mutable unsigned lazy_next_failures_ = 0;
    mutable unsigned lazy_next_probe_ = 0;
    std::uint64_t version_ = 1; // the last committed version; 0 means "never existed"
    bool writing_ = false;
    std::size_t write_scans_ = 0; // scans of the write transaction in progress
    std::vector<undo_record> undo_;
    std::vector<reader_count> readers_;
    std::vector<iterator> versioned_; // entries with a history
    std::size_t retained_ = 0;
    std::size_t retained_after_collect_ = 1;
};

/// A read transaction of a `memory_store`: a snapshot of the committed state
/// at the time it was opened. Views it returns stay valid until it ends.
/// Move-only; ends when destroyed.
class memory_store::read_txn {
public:
    read_txn(read_txn&& other) noexcept
        : store_(std::exchange(other.store_, nullptr)), snapshot_(other.snapshot_) {}
    read_txn& operator=(read_txn&& other) noexcept {
        if (this != &other) {
            release();
            store_ = std::exchange(other.store_, nullptr);
            snapshot_ = other.snapshot_;
        }
        return *this;
    }
    read_txn(const read_txn&) = delete;
    read_txn& operator=(const read_txn&) = delete;
    ~read_txn() { release(); }

    /// The value of `key`, or `std::nullopt` when absent.
    [[nodiscard]] std::optional<std::string_view> get(std::string_view key) const {
        const auto& s = store();
        const auto it = s.find(key);
        if (it == s.map_.end()) return std::nullopt;
        return s.visible(it->second, snapshot_);
    }

    /// Calls `fn(key, value) -> bool` for each key in `[begin, end)` in
    /// ascending order (`end` empty: no upper bound), until `fn` returns false.
    template <class Fn>
    void scan(std::string_view begin, std::string_view end, Fn&& fn) const {
        const auto& s = store();
        for (auto it = s.map_.lower_bound(begin); it != s.map_.end(); ++it) {
            const std::string_view key = it->first;
            if (!end.empty() && !(key < end)) break;
            const auto value = s.visible(it->second, snapshot_);
            // A node visible to this snapshot is never removed while the
            // snapshot is open, so `it` survives whatever `fn` does.
            if (value && !std::invoke(fn, key, *value)) return;
        }
    }

private:
    friend class memory_store;
    void release() noexcept {
        if (store_ != nullptr) std::exchange(store_, nullptr)->close_reader(snapshot_);
    }

    read_txn(memory_store& store, std::uint64_t snapshot) noexcept : store_(&store), snapshot_(snapshot) {}

    [[nodiscard]] const memory_store& store() const {
        if (store_ == nullptr) detail::raise(errc::invalid_argument, "memory_store: the read transaction has ended");
        return *store_;
    }

    memory_store* store_;
    std::uint64_t snapshot_;
};

/// The write transaction of a `memory_store`. Sees its own changes; nothing
/// of it is visible to readers before `commit()`. Destroying it without
/// `commit()` aborts it. Move-only.
///
/// After `commit()` or `abort()` the transaction has ended: `abort()` again
/// does nothing, anything else throws `usage_error`.
class memory_store::write_txn {
public:
    write_txn(write_txn&& other) noexcept : store_(std::exchange(other.store_, nullptr)) {}
    write_txn& operator=(write_txn&& other) noexcept {
        if (this != &other) {
            abort_noexcept();
            store_ = std::exchange(other.store_, nullptr);
        }
        return *this;
    }
    write_txn(const write_txn&) = delete;
    write_txn& operator=(const write_txn&) = delete;
    ~write_txn() { abort_noexcept(); }

    /// The value of `key` including this transaction's changes. The view is
    /// valid until the next `put`/`erase` or the end of the transaction.
    [[nodiscard]] std::optional<std::string_view> get(std::string_view key) const {
        auto& s = store();
        const auto it = s.find_for_write(key);
        if (it == s.map_.end() || !it->second.present) return std::nullopt;
        return it->second.value.view();
    }

    /// Visits `[begin, end)` in ascending order including this transaction's
    /// changes. `fn` may put and erase (the visited key too); keys it adds
    /// after the current one are visited.
    template <class Fn>
    void scan(std::string_view begin, std::string_view end, Fn&& fn) const {
        auto& s = store();
        ++s.write_scans_;
        struct guard {
            memory_store& s;
            ~guard() { --s.write_scans_; }
        } g{s};
        // Erasing in a write transaction only marks the node; nodes are
        // removed at commit or abort, which cannot happen during a scan.
        for (auto it = s.map_.lower_bound(begin); it != s.map_.end(); ++it) {
            const std::string_view key = it->first;
            if (!end.empty() && !(key < end)) break;
            if (it->second.present && !std::invoke(fn, key, it->second.value.view())) return;
        }
    }

    /// Inserts or overwrites `key`.
    void put(std::string_view key, std::string_view value) {
        auto& s = store();
        bool fresh = false;
        const auto it = s.find_or_insert(key, fresh);
        s.write_version(it, fresh, value);
    }

    /// Removes `key`; true when it was present.
    bool erase(std::string_view key) {
        auto& s = store();
        // A point lookup that leaves the fingers where the writes are: an
        // erase is mostly of an old key (a superseded change-log entry)
        // amid appends, which the finger would otherwise stop placing.
        const auto it = s.find(key);
        if (it == s.map_.end() || !it->second.present) return false;
        s.write_version(it, false, std::nullopt);
        return true;
    }

    /// Makes every change visible to transactions opened from now on.
    void commit() {
        auto& s = store();
        if (s.write_scans_ != 0) {
            detail::raise(errc::invalid_argument, "memory_store: commit() called inside this transaction's scan");
        }
        std::exchange(store_, nullptr)->commit_write();
    }

    /// Discards every change. Does nothing when the transaction has ended.
    void abort() {
        if (store_ == nullptr) return;
        if (store_->write_scans_ != 0) {
            detail::raise(errc::invalid_argument, "memory_store: abort() called inside this transaction's scan");
        }
        std::exchange(store_, nullptr)->abort_write();
    }

private:
    friend class memory_store;
    explicit write_txn(memory_store& store) noexcept : store_(&store) {}

    [[nodiscard]] memory_store& store() const {
        if (store_ == nullptr) detail::raise(errc::invalid_argument, "memory_store: the write transaction has ended");
        return *store_;
    }
    void abort_noexcept() noexcept {
        if (store_ != nullptr) std::exchange(store_, nullptr)->abort_write();
    }

    memory_store* store_;
};

inline memory_store::read_txn memory_store::read() { return read_txn(*this, open_reader()); }

inline memory_store::write_txn memory_store::write() {
    begin_write();
    return write_txn(*this);
}

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
