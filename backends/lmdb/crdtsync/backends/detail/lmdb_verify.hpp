#pragma once
/// \file lmdb_verify.hpp
/// A structural check of an LMDB data file that reads it with `pread`, never
/// through LMDB's map, for `lmdb_store::verify` and
/// `lmdb_options::verify_on_open`. Internal.
///
/// LMDB keeps no checksums and trusts every page it reads: a page number,
/// a node offset or a size taken from a damaged page is followed through the
/// map, and the process dies (SIGSEGV, SIGBUS, or one of LMDB's assertions).
/// This walk visits every page a snapshot uses, from the meta page of the
/// snapshot's transaction, and checks what LMDB would trust: that page
/// numbers are inside the file, page kinds are where the tree expects them,
/// the free-space bounds and every node lie inside the page, keys are in
/// order, overflow runs are inside the file, sub-databases (named databases,
/// sorted duplicates) are sound, the page counts the database records keep
/// are exact, and no page is used twice (by two trees, twice in one, or
/// both in a tree and as free space). A page neither in a tree nor free is
/// counted, not refused: LMDB never reads it. A file it passes cannot send LMDB outside the file or round a
/// cycle; it can still hold wrong bytes inside values, which the replica's
/// decoders refuse.
///
/// The on-disk format is LMDB 0.9's (data format version 1), as documented
/// in the comments of its mdb.c (`MDB_page`, `MDB_node`, `MDB_db`,
/// `MDB_meta`); nothing of it is included, the layout is restated here.

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include <crdtsync/error.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

/// What a walk found in a sound file.
struct lmdb_walk_counts {
    std::uint64_t pages = 0;     ///< pages the snapshot counts: its last page number + 1
    std::uint64_t in_use = 0;    ///< pages of trees (branch, leaf, overflow), metas excluded
    std::uint64_t free = 0;      ///< pages the free-space database lists
    std::uint64_t entries = 0;   ///< data items of the main database (not of named ones)
    std::uint64_t databases = 0; ///< named databases found in the main database
    std::uint64_t lost = 0;      ///< pages neither in a tree nor free (leaked)
};

/// The outcome of a walk: `code` is `errc::corrupt` for damage,
/// `errc::storage` for an I/O failure, and `retry` is set when the meta page
/// no longer belongs to the snapshot (another process committed twice since
/// the snapshot began; walk a newer one).
struct lmdb_walk_result {
    std::optional<errc> code;
    std::string problem;
    bool retry = false;
    lmdb_walk_counts counts;
};

/// Walks the file `fd` (of `file_size` bytes, pages of `page_size` bytes)
/// as of the snapshot of transaction `txnid`, which must be held open by a
/// read transaction so that no writer reuses its pages meanwhile.
class lmdb_walker {
public:
    lmdb_walker(int fd, std::uint64_t file_size, std::uint64_t page_size, std::uint64_t txnid,
                std::size_t max_key) noexcept
        : fd_(fd), file_size_(file_size), psize_(page_size), txnid_(txnid), max_key_(max_key) {}

    [[nodiscard]] lmdb_walk_result run() {
        if (walk()) {
            result_.counts.pages = last_ + 1;
            result_.code.reset();
        }
        return std::move(result_);
    }

private:
    // ---------------------------------------------------------------- the format
    // Page numbers and sizes are size_t wide (pgno_t, txnid_t).
    static constexpr std::size_t word = sizeof(std::size_t);
    static constexpr std::size_t header = word + 8; // PAGEHDRSZ: pgno, pad, flags, lower, upper
    static constexpr std::size_t node_header = 8;   // NODESIZE: lo, hi, flags, ksize
    static constexpr std::size_t db_size = 8 + 5 * word; // MDB_db
    // In MDB_meta (after the page header): magic, version, address, map
    // size, the free-space and main databases' records, last page, txnid.
    static constexpr std::size_t dbs_at = 8 + 2 * word;
    static constexpr std::size_t last_at = dbs_at + 2 * db_size;
    static constexpr std::uint32_t magic = 0xBEEFC0DE;
    static constexpr std::uint32_t data_version = 1;
    static constexpr unsigned cursor_stack = 32; // LMDB's deepest tree (CURSOR_STACK)
    static constexpr std::uint64_t invalid_page = ~std::uint64_t{0} >> (64 - 8 * word);

    // Page flags.
    static constexpr std::uint16_t p_branch = 0x01, p_leaf = 0x02, p_overflow = 0x04, p_meta = 0x08,
                                   p_dirty = 0x10, p_leaf2 = 0x20, p_subp = 0x40;
    // Node flags.
    static constexpr std::uint16_t f_bigdata = 0x01, f_subdata = 0x02, f_dupdata = 0x04;
    // Database flags (mdb_dbi_open's, as stored).
    static constexpr std::uint16_t reverse_key = 0x02, dup_sort = 0x04, integer_key = 0x08, dup_fixed = 0x10,
                                   integer_dup = 0x20, reverse_dup = 0x40;
    static constexpr std::uint16_t db_flags = reverse_key | dup_sort | integer_key | dup_fixed | integer_dup | reverse_dup;

    template <class T>
    [[nodiscard]] static T load(const unsigned char* p) noexcept {
        T v{};
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    [[nodiscard]] static std::uint64_t load_word(const unsigned char* p) noexcept {
        return static_cast<std::uint64_t>(load<std::size_t>(p));
    }

    struct db_record {
        std::uint32_t pad = 0;
        std::uint16_t flags = 0;
        std::uint16_t depth = 0;
        std::uint64_t branch = 0, leaf = 0, overflow = 0, entries = 0, root = 0;
    };
    [[nodiscard]] static db_record load_db(const unsigned char* p) noexcept {
        db_record d;
        d.pad = load<std::uint32_t>(p);
        d.flags = load<std::uint16_t>(p + 4);
        d.depth = load<std::uint16_t>(p + 6);
        d.branch = load_word(p + 8);
        d.leaf = load_word(p + 8 + word);
        d.overflow = load_word(p + 8 + 2 * word);
        d.entries = load_word(p + 8 + 3 * word);
        d.root = load_word(p + 8 + 4 * word);
        return d;
    }

    // How keys of a tree are ordered: LMDB's comparators, restated. An
    // integer key (INTEGERKEY, INTEGERDUP) is a native unsigned number of
    // one size: on a little-endian machine its order is the reverse-byte
    // order of REVERSEKEY.
    enum class order { forward, reverse };
    [[nodiscard]] static order integer_order() noexcept {
        return std::endian::native == std::endian::little ? order::reverse : order::forward;
    }
    [[nodiscard]] static order key_order(std::uint16_t flags) noexcept {
        if ((flags & integer_key) != 0) return integer_order();
        return (flags & reverse_key) != 0 ? order::reverse : order::forward;
    }
    [[nodiscard]] static order dup_order(std::uint16_t flags) noexcept {
        if ((flags & integer_dup) != 0) return integer_order();
        return (flags & reverse_dup) != 0 ? order::reverse : order::forward;
    }
    [[nodiscard]] static int compare(order o, std::string_view a, std::string_view b) noexcept {
        const std::size_t n = std::min(a.size(), b.size());
        if (o == order::forward) {
            if (const int c = n == 0 ? 0 : std::memcmp(a.data(), b.data(), n); c != 0) return c;
        } else {
            for (std::size_t i = 1; i <= n; ++i) {
                const auto x = static_cast<unsigned char>(a[a.size() - i]);
                const auto y = static_cast<unsigned char>(b[b.size() - i]);
                if (x != y) return x < y ? -1 : 1;
            }
        }
        return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
    }

    // What a tree holds, which decides what its leaves may contain.
    enum class tree_kind {
        free_space, // keys: transaction ids; values: lists of free pages
        main,       // keys and values; named databases (F_SUBDATA)
        named,      // a named database: keys and values
        dups,       // a sub-database of sorted duplicates: keys only
    };

    struct tree {
        tree_kind kind;
        std::string name;      // for messages
        std::uint16_t flags;   // the record's flags
        std::uint16_t parent_flags; // dups: the flags of the database owning them
        std::uint32_t pad;     // LEAF2 key size
        std::uint16_t depth;
        // Counted during the walk.
        std::uint64_t branch = 0, leaf = 0, overflow = 0, entries = 0;
    };

    // ---------------------------------------------------------------- failures

    bool fail(std::uint64_t page, const std::string& what) {
        result_.code = errc::corrupt;
        result_.problem = "page " + std::to_string(page) + " " + what;
        return false;
    }
    bool fail_file(const std::string& what) {
        result_.code = errc::corrupt;
        result_.problem = what;
        return false;
    }

    // Reads `n` bytes at `offset`; false (and the problem set) on failure.
    bool read_at(std::uint64_t offset, unsigned char* into, std::size_t n, std::uint64_t page) {
        if (offset > file_size_ || n > file_size_ - offset) {
            return fail(page, "lies past the end of the file (" + std::to_string(file_size_) + " bytes)");
        }
        std::size_t done = 0;
        while (done < n) {
            const ::ssize_t got = ::pread(fd_, into + done, n - done, static_cast<::off_t>(offset + done));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                result_.code = errc::storage;
                result_.problem = "reading page " + std::to_string(page) + " failed: " +
                                  (got < 0 ? std::string(std::strerror(errno)) : std::string("the file ended early"));
                return false;
            }
            done += static_cast<std::size_t>(got);
        }
        return true;
    }

    // Marks `page` as used once; a second use is damage (a cycle, a shared
    // page, a page both in use and free).
    bool claim(std::uint64_t page, std::string_view by) {
        if (page < 2 || page > last_) {
            return fail(page, "is named by " + std::string(by) + " but is not a data page of this file (pages 2 to " +
                                  std::to_string(last_) + ")");
        }
        if (seen_[page]) return fail(page, "is reached twice (" + std::string(by) + "): the tree is damaged");
        seen_[page] = true;
        return true;
    }

    // ---------------------------------------------------------------- the walk

    bool walk() {
        // Both meta pages, as LMDB reads them at open; the snapshot's is
        // page txnid % 2.
        std::vector<unsigned char> metas[2];
        std::uint64_t last_of[2] = {0, 0};
        if (psize_ < 512 || psize_ > 0x8000 || !std::has_single_bit(psize_)) {
            return fail_file("the page size " + std::to_string(psize_) + " is not one LMDB writes");
        }
        for (unsigned i = 0; i < 2; ++i) {
            metas[i].resize(static_cast<std::size_t>(psize_));
            if (!read_at(i * psize_, metas[i].data(), metas[i].size(), i)) return false;
            const unsigned char* p = metas[i].data();
            const unsigned char* m = p + header;
            const std::string meta = "(meta page)";
            if ((load<std::uint16_t>(p + word + 2) & p_meta) == 0) return fail(i, meta + " is not marked as a meta page");
            if (load<std::uint32_t>(m) != magic) return fail(i, meta + " lacks LMDB's magic number");
            if (load<std::uint32_t>(m + 4) != data_version) return fail(i, meta + " has another data format version");
            const db_record free_db = load_db(m + dbs_at);
            if (free_db.pad != psize_) {
                return fail(i, meta + " records pages of " + std::to_string(free_db.pad) + " bytes, the file has " +
                                   std::to_string(psize_));
            }
            last_of[i] = load_word(m + last_at);
        }
        const unsigned current = static_cast<unsigned>(txnid_ & 1);
        const unsigned char* m = metas[current].data() + header;
        const std::uint64_t recorded = load_word(m + last_at + word);
        if (recorded != txnid_) {
            // Written again since the snapshot began: only another commit
            // does that (two of them), so look at the newer snapshot.
            result_.code = errc::corrupt;
            result_.problem = "meta page " + std::to_string(current) + " records transaction " +
                              std::to_string(recorded) + ", the snapshot is transaction " + std::to_string(txnid_);
            result_.retry = true;
            return false;
        }
        last_ = last_of[current];
        if (last_ < 1 || last_ >= file_size_ / psize_) {
            return fail(current, "(meta page) counts " + std::to_string(last_) + " as its last page, the file holds " +
                                     std::to_string(file_size_ / psize_) + " pages");
        }
        seen_.assign(static_cast<std::size_t>(last_ + 1), false);
        seen_[0] = seen_[1] = true;

        const db_record free_db = load_db(m + dbs_at);
        const db_record main_db = load_db(m + dbs_at + db_size);
        if ((free_db.flags & integer_key) == 0) return fail(current, "(meta page): the free-space database is not keyed by integers");
        if ((main_db.flags & ~db_flags) != 0) return fail(current, "(meta page): the main database has unknown flags");
        tree free_tree{tree_kind::free_space, "the free-space database", integer_key, 0, 0, free_db.depth};
        if (!walk_tree(free_tree, free_db)) return false;
        tree main_tree{tree_kind::main, "the main database", main_db.flags, 0, main_db.pad, main_db.depth};
        if (!walk_tree(main_tree, main_db)) return false;
        result_.counts.entries = main_tree.entries;

        // LMDB 0.9 keeps every page in a tree or listed free. One in
        // neither is leaked space, not a danger: LMDB never reads it, so
        // refusing the file for it would cost its data for nothing.
        result_.counts.lost = last_ + 1 - (result_.counts.in_use + result_.counts.free + 2);
        return true;
    }

    bool walk_tree(tree& t, const db_record& d) {
        if (d.root == invalid_page) {
            if (d.depth != 0 || d.branch != 0 || d.leaf != 0 || d.overflow != 0 || d.entries != 0) {
                return fail_file(t.name + " is empty but its record counts pages or entries");
            }
            return true;
        }
        if (d.depth == 0 || d.depth > cursor_stack) {
            return fail(d.root, "is the root of " + t.name + ", recorded with depth " + std::to_string(d.depth));
        }
        if (!walk_page(t, d.root, 1, std::nullopt, std::nullopt)) return false;
        if (t.branch != d.branch || t.leaf != d.leaf || t.overflow != d.overflow) {
            return fail(d.root, "is the root of " + t.name + ", whose record counts " + std::to_string(d.branch) +
                                    " branch, " + std::to_string(d.leaf) + " leaf and " + std::to_string(d.overflow) +
                                    " overflow pages; the tree has " + std::to_string(t.branch) + ", " +
                                    std::to_string(t.leaf) + " and " + std::to_string(t.overflow));
        }
        if (t.entries != d.entries) {
            return fail(d.root, "is the root of " + t.name + ", whose record counts " + std::to_string(d.entries) +
                                    " entries; the tree has " + std::to_string(t.entries));
        }
        result_.counts.in_use += t.branch + t.leaf + t.overflow;
        return true;
    }

    // The nodes of a page (or of a sub-page, `base` bytes into `bytes`,
    // `size` long): header bounds, node offsets and key sizes inside it.
    // Calls `visit(i, node_offset)` for each node, after checking that its
    // header lies inside.
    template <class Visit>
    bool each_node(std::uint64_t page, const unsigned char* p, std::size_t size, std::string_view what, Visit&& visit) {
        const auto lower = load<std::uint16_t>(p + word + 4);
        const auto upper = load<std::uint16_t>(p + word + 6);
        if (lower < header || lower > upper || upper > size || (lower - header) % 2 != 0) {
            return fail(page, std::string(what) + " has free-space bounds " + std::to_string(lower) + ".." +
                                  std::to_string(upper) + " outside " + std::to_string(header) + ".." +
                                  std::to_string(size));
        }
        const std::size_t n = (lower - header) / 2;
        if (n == 0) return fail(page, std::string(what) + " holds no nodes");
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t off = load<std::uint16_t>(p + header + 2 * i);
            if (off < upper || off % 2 != 0 || off + node_header > size) {
                return fail(page, std::string(what) + ": node " + std::to_string(i) + " is at offset " +
                                      std::to_string(off) + ", outside its node area " + std::to_string(upper) + ".." +
                                      std::to_string(size));
            }
            const std::size_t ksize = load<std::uint16_t>(p + off + 6);
            if (ksize > max_key_ || off + node_header + ksize > size) {
                return fail(page, std::string(what) + ": node " + std::to_string(i) + " has a key of " +
                                      std::to_string(ksize) + " bytes, which does not fit");
            }
            if (!visit(i, off, ksize)) return false;
        }
        return true;
    }

    // Keys in order: strictly increasing, and inside [low, high).
    bool in_order(std::uint64_t page, order o, std::string_view key, std::size_t i,
                  const std::optional<std::string_view>& prev, const std::optional<std::string_view>& low,
                  const std::optional<std::string_view>& high) {
        if ((prev && compare(o, *prev, key) >= 0) || (low && compare(o, key, *low) < 0) ||
            (high && compare(o, key, *high) >= 0)) {
            return fail(page, "has its key " + std::to_string(i) + " out of order");
        }
        return true;
    }

    bool walk_page(tree& t, std::uint64_t pgno, unsigned level, std::optional<std::string_view> low,
                   std::optional<std::string_view> high) {
        if (!claim(pgno, t.name)) return false;
        std::vector<unsigned char> buf(static_cast<std::size_t>(psize_));
        if (!read_at(pgno * psize_, buf.data(), buf.size(), pgno)) return false;
        const unsigned char* p = buf.data();
        const std::size_t size = buf.size();
        if (load_word(p) != pgno) return fail(pgno, "records itself as page " + std::to_string(load_word(p)));
        const auto flags = load<std::uint16_t>(p + word + 2);
        const bool leaf_level = level == t.depth;
        const bool fixed = t.kind == tree_kind::dups && (t.parent_flags & dup_fixed) != 0;
        const order o = t.kind == tree_kind::dups ? dup_order(t.parent_flags) : key_order(t.flags);

        if (!leaf_level) {
            if (flags != p_branch) {
                return fail(pgno, "has flags " + std::to_string(flags) + " at level " + std::to_string(level) +
                                      " of " + t.name + " (depth " + std::to_string(t.depth) + "), not a branch page");
            }
            ++t.branch;
            std::optional<std::string_view> prev;
            std::vector<std::pair<std::uint64_t, std::string_view>> children;
            const bool ok = each_node(pgno, p, size, "branch page", [&](std::size_t i, std::size_t off, std::size_t ksize) {
                const std::uint64_t child = std::uint64_t{load<std::uint16_t>(p + off)} |
                                            (std::uint64_t{load<std::uint16_t>(p + off + 2)} << 16) |
                                            (word == 8 ? std::uint64_t{load<std::uint16_t>(p + off + 4)} << 32 : 0);
                const std::string_view key(reinterpret_cast<const char*>(p + off + node_header), ksize);
                // The first key of a branch page is not used: the child
                // holds everything below the second.
                if (i > 0) {
                    if (!in_order(pgno, o, key, i, prev, low, high)) return false;
                    prev = key;
                }
                children.emplace_back(child, i > 0 ? key : std::string_view{});
                return true;
            });
            if (!ok) return false;
            for (std::size_t i = 0; i < children.size(); ++i) {
                const auto child_low = i > 0 ? std::optional<std::string_view>(children[i].second) : low;
                const auto child_high = i + 1 < children.size() ? std::optional<std::string_view>(children[i + 1].second) : high;
                if (children[i].first > last_) {
                    return fail(pgno, "points at page " + std::to_string(children[i].first) +
                                          " from its node " + std::to_string(i) + ", past the last page " +
                                          std::to_string(last_));
                }
                if (!walk_page(t, children[i].first, level + 1, child_low, child_high)) return false;
            }
            return true;
        }

        // A leaf.
        const std::uint16_t want = fixed ? static_cast<std::uint16_t>(p_leaf | p_leaf2) : p_leaf;
        if (flags != want) {
            return fail(pgno, "has flags " + std::to_string(flags) + " at the leaf level of " + t.name + " (depth " +
                                  std::to_string(t.depth) + "), not a leaf page");
        }
        ++t.leaf;
        if (fixed) return walk_fixed(t, pgno, p, size, o, t.pad, low, high);
        std::optional<std::string_view> prev;
        return each_node(pgno, p, size, "leaf page", [&](std::size_t i, std::size_t off, std::size_t ksize) {
            const std::string_view key(reinterpret_cast<const char*>(p + off + node_header), ksize);
            if (!in_order(pgno, o, key, i, prev, low, high)) return false;
            prev = key;
            return leaf_node(t, pgno, p, size, i, off, ksize);
        });
    }

    // A LEAF2 page or sub-page: keys of one size one after another.
    bool walk_fixed(tree& t, std::uint64_t pgno, const unsigned char* p, std::size_t size, order o, std::size_t ks,
                    std::optional<std::string_view> low, std::optional<std::string_view> high) {
        const auto lower = load<std::uint16_t>(p + word + 4);
        const auto upper = load<std::uint16_t>(p + word + 6);
        const std::size_t pad = load<std::uint16_t>(p + word);
        if (lower < header || lower > upper || upper > size || (lower - header) % 2 != 0) {
            return fail(pgno, "(fixed-size duplicates) has free-space bounds " + std::to_string(lower) + ".." +
                                  std::to_string(upper) + " outside " + std::to_string(header) + ".." +
                                  std::to_string(size));
        }
        const std::size_t n = (lower - header) / 2;
        if (pad != ks || ks == 0 || ks > max_key_ || n == 0 || header + n * ks > size) {
            return fail(pgno, "(fixed-size duplicates) holds " + std::to_string(n) + " keys of " +
                                  std::to_string(pad) + " bytes, which do not fit or are not the database's " +
                                  std::to_string(ks));
        }
        std::optional<std::string_view> prev;
        for (std::size_t i = 0; i < n; ++i) {
            const std::string_view key(reinterpret_cast<const char*>(p + header + i * ks), ks);
            if (!in_order(pgno, o, key, i, prev, low, high)) return false;
            prev = key;
        }
        t.entries += n;
        return true;
    }

    bool leaf_node(tree& t, std::uint64_t pgno, const unsigned char* p, std::size_t size, std::size_t i,
                   std::size_t off, std::size_t ksize) {
        const auto nflags = load<std::uint16_t>(p + off + 4);
        const std::uint64_t dsize = std::uint64_t{load<std::uint16_t>(p + off)} | (std::uint64_t{load<std::uint16_t>(p + off + 2)} << 16);
        const std::size_t data_at = off + node_header + ksize;
        const std::string node = "leaf page: node " + std::to_string(i);
        const bool dupsort = (t.flags & dup_sort) != 0 && t.kind != tree_kind::dups;
        switch (nflags) {
        case 0: {
            if (dsize > size - data_at) return fail(pgno, node + " has " + std::to_string(dsize) + " bytes of data, which do not fit");
            if (t.kind == tree_kind::dups && dsize != 0) return fail(pgno, node + " is a duplicate with data");
            if (t.kind == tree_kind::free_space && !free_list(pgno, p + data_at, dsize, ksize, p + off + node_header)) return false;
            ++t.entries;
            return true;
        }
        case f_bigdata: {
            if (t.kind == tree_kind::dups || dupsort) return fail(pgno, node + " has an overflow value in a tree of duplicates");
            if (word > size - data_at) return fail(pgno, node + ": its overflow page number does not fit");
            const std::uint64_t first = load_word(p + data_at);
            unsigned char ov[header];
            if (first < 2 || first > last_) {
                return fail(pgno, node + " points at overflow page " + std::to_string(first) + ", outside pages 2 to " +
                                      std::to_string(last_));
            }
            if (!read_at(first * psize_, ov, header, first)) return false;
            const auto pages = load<std::uint32_t>(ov + word + 4);
            const std::uint64_t needed = (header - 1 + dsize) / psize_ + 1; // OVPAGES
            if (load_word(ov) != first || load<std::uint16_t>(ov + word + 2) != p_overflow || pages < needed ||
                pages > last_ + 1 - first) {
                return fail(first, "is named by " + node + " of page " + std::to_string(pgno) + " as the start of " +
                                       std::to_string(needed) + " overflow pages, and is not (its header says " +
                                       std::to_string(pages) + " pages, flags " +
                                       std::to_string(load<std::uint16_t>(ov + word + 2)) + ")");
            }
            for (std::uint64_t k = 0; k < pages; ++k)
                if (!claim(first + k, "an overflow run of " + t.name)) return false;
            t.overflow += pages;
            if (t.kind == tree_kind::free_space) {
                std::vector<unsigned char> data(static_cast<std::size_t>(dsize));
                if (!read_at(first * psize_ + header, data.data(), data.size(), first)) return false;
                if (!free_list(pgno, data.data(), dsize, ksize, p + off + node_header)) return false;
            }
            ++t.entries;
            return true;
        }
        case f_subdata: {
            if (t.kind != tree_kind::main || dupsort) return fail(pgno, node + " names a database where none can be");
            if (dsize != db_size || data_at + db_size > size) return fail(pgno, node + " names a database with a record of " + std::to_string(dsize) + " bytes");
            const db_record d = load_db(p + data_at);
            std::string name(reinterpret_cast<const char*>(p + off + node_header), ksize);
            if ((d.flags & ~db_flags) != 0) return fail(pgno, node + " names the database '" + name + "' with unknown flags");
            tree named{tree_kind::named, "the database '" + name + "'", d.flags, 0, d.pad, d.depth};
            if (!walk_tree(named, d)) return false;
            ++result_.counts.databases;
            ++t.entries;
            return true;
        }
        case f_dupdata: {
            if (!dupsort) return fail(pgno, node + " holds duplicates in a database without them");
            if (dsize < header || dsize > size - data_at) return fail(pgno, node + " holds a sub-page of " + std::to_string(dsize) + " bytes, which does not fit");
            const unsigned char* sp = p + data_at;
            const auto sflags = static_cast<std::uint16_t>(load<std::uint16_t>(sp + word + 2) & ~p_dirty);
            const bool fixed = (t.flags & dup_fixed) != 0;
            const order o = dup_order(t.flags);
            if (sflags != (fixed ? p_leaf | p_subp | p_leaf2 : p_leaf | p_subp)) {
                return fail(pgno, node + " holds a sub-page with flags " + std::to_string(sflags));
            }
            const auto sub = static_cast<std::size_t>(dsize);
            if (fixed) {
                tree dummy{tree_kind::dups, t.name, 0, t.flags, 0, 0};
                if (!walk_fixed(dummy, pgno, sp, sub, o, load<std::uint16_t>(sp + word), std::nullopt, std::nullopt)) return false;
                t.entries += dummy.entries;
                return true;
            }
            std::optional<std::string_view> prev;
            return each_node(pgno, sp, sub, node + "'s sub-page", [&](std::size_t k, std::size_t soff, std::size_t sksize) {
                const std::string_view key(reinterpret_cast<const char*>(sp + soff + node_header), sksize);
                if (!in_order(pgno, o, key, k, prev, std::nullopt, std::nullopt)) return false;
                prev = key;
                if (load<std::uint16_t>(sp + soff + 4) != 0 || load<std::uint16_t>(sp + soff) != 0 ||
                    load<std::uint16_t>(sp + soff + 2) != 0) {
                    return fail(pgno, node + "'s sub-page: duplicate " + std::to_string(k) + " has data or flags");
                }
                ++t.entries;
                return true;
            });
        }
        case f_subdata | f_dupdata: {
            if (!dupsort) return fail(pgno, node + " holds duplicates in a database without them");
            if (dsize != db_size || data_at + db_size > size) return fail(pgno, node + " holds duplicates with a record of " + std::to_string(dsize) + " bytes");
            const db_record d = load_db(p + data_at);
            if ((d.flags & ~db_flags) != 0) return fail(pgno, node + " holds duplicates whose record has unknown flags");
            tree dups{tree_kind::dups, "the duplicates of " + node + " of page " + std::to_string(pgno), d.flags, t.flags,
                      d.pad, d.depth};
            if (!walk_tree(dups, d)) return false;
            if (d.entries == 0) return fail(pgno, node + " holds an empty tree of duplicates");
            t.entries += d.entries;
            return true;
        }
        default: return fail(pgno, node + " has unknown flags " + std::to_string(nflags));
        }
    }

    // A record of the free-space database: a transaction id, then a list
    // of free pages (a count, then the page numbers).
    bool free_list(std::uint64_t pgno, const unsigned char* data, std::uint64_t dsize, std::size_t ksize,
                   const unsigned char* key) {
        if (ksize != word) return fail(pgno, "(free-space database) has a key of " + std::to_string(ksize) + " bytes");
        const std::uint64_t txn = load_word(key);
        if (txn > txnid_) {
            return fail(pgno, "(free-space database) lists pages freed by transaction " + std::to_string(txn) +
                                  ", after this snapshot's " + std::to_string(txnid_));
        }
        if (dsize < word || dsize % word != 0 || load_word(data) != dsize / word - 1) {
            return fail(pgno, "(free-space database) has a list of free pages of " + std::to_string(dsize) +
                                  " bytes that does not match its count");
        }
        for (std::uint64_t k = 1; k < dsize / word; ++k) {
            if (!claim(load_word(data + k * word), "the free-space database as free")) return false;
        }
        result_.counts.free += dsize / word - 1;
        return true;
    }

    int fd_;
    std::uint64_t file_size_;
    std::uint64_t psize_;
    std::uint64_t txnid_;
    std::size_t max_key_;
    std::uint64_t last_ = 0;
    std::vector<bool> seen_;
    lmdb_walk_result result_;
};

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
