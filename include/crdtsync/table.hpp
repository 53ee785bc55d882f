#pragma once
/// \file table.hpp
/// `typed_table`: a table whose rows are plain structs reflected with
/// Boost.Hana (`BOOST_HANA_DEFINE_STRUCT`). The schema is derived from the
/// struct: member names are column names; `bool` is BOOLEAN, integers are
/// INTEGER, floating point is REAL, `std::string` is TEXT, `crdtsync::blob`
/// is BLOB, `crdtsync::value` is ANY; `std::optional<X>` makes a column
/// nullable (every other member is NOT NULL).
///
/// ```
/// struct task { BOOST_HANA_DEFINE_STRUCT(task, (std::int64_t, id), (std::string, title), (bool, done)); };
/// auto tasks = alice.table<task>("tasks", crdtsync::key(&task::id));
/// alice.write([&](auto& tx) { tasks.insert(tx, {1, "buy milk", false}); });
/// std::optional<task> t = tasks.get(1);
/// ```

#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <boost/hana/accessors.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/string.hpp>
#include <boost/hana/define_struct.hpp>

#include <crdtsync/replica.hpp>
#include <crdtsync/schema.hpp>
#include <crdtsync/value.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

namespace detail {

template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};

// The column type and nullability of a struct member type.
template <class M>
constexpr std::pair<column_type, bool> column_of() {
    if constexpr (is_optional<M>::value) return {column_of<typename M::value_type>().first, true};
    else if constexpr (std::same_as<M, value>) return {column_type::any, true};
    else if constexpr (std::same_as<M, bool>) return {column_type::boolean, false};
    else if constexpr (std::integral<M>) return {column_type::integer, false};
    else if constexpr (std::floating_point<M>) return {column_type::real, false};
    else if constexpr (std::same_as<M, std::string>) return {column_type::text, false};
    else if constexpr (std::same_as<M, blob>) return {column_type::blob, false};
    else static_assert(sizeof(M) == 0, "crdtsync: unsupported member type in a typed table struct "
                                      "(use bool, integers, floating point, std::string, crdtsync::blob, "
                                      "crdtsync::value or std::optional of those)");
}

template <class M>
value to_value(const M& m) {
    if constexpr (is_optional<M>::value) return m ? to_value(*m) : value{};
    else if constexpr (std::same_as<M, value>) return m;
    else return value{m};
}

template <class M>
M from_value(const value& v, const std::string& column) {
    auto mismatch = [&](const char* want) -> M {
        detail::raise(errc::schema_mismatch, "column \"" + column + "\" holds " + value::kind_name(v.kind()) +
                                                 ", the struct member needs " + want);
    };
    if constexpr (is_optional<M>::value) {
        if (v.is_null()) return std::nullopt;
        return from_value<typename M::value_type>(v, column);
    } else if constexpr (std::same_as<M, value>) {
        return v;
    } else if constexpr (std::same_as<M, bool>) {
        if (auto b = v.get_if<bool>()) return *b;
        if (auto i = v.get_if<std::int64_t>(); i && (*i == 0 || *i == 1)) return *i == 1;
        return mismatch("a boolean");
    } else if constexpr (std::integral<M>) {
        if (auto i = v.get_if<std::int64_t>()) {
            if (std::in_range<M>(*i)) return static_cast<M>(*i);
            return mismatch("an integer in the member's range");
        }
        return mismatch("an integer");
    } else if constexpr (std::floating_point<M>) {
        if (auto d = v.get_if<double>()) return static_cast<M>(*d);
        if (auto i = v.get_if<std::int64_t>()) return static_cast<M>(*i);
        return mismatch("a real");
    } else if constexpr (std::same_as<M, std::string>) {
        if (auto s = v.get_if<std::string>()) return *s;
        return mismatch("text");
    } else {
        if (auto b = v.get_if<blob>()) return *b;
        return mismatch("a blob");
    }
}

template <class T>
table_def struct_table_def(const std::string& name, const std::vector<std::string>& key) {
    auto [schema, table] = [&]() -> std::pair<std::string, std::string> {
        const auto dot = name.find('.');
        if (dot == std::string::npos) return {"main", name};
        return {name.substr(0, dot), name.substr(dot + 1)};
    }();
    table_def def{table, schema};
    boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
        using M = std::decay_t<decltype(boost::hana::second(pair)(std::declval<T&>()))>;
        constexpr auto col = column_of<M>();
        def.column(boost::hana::to<const char*>(boost::hana::first(pair)), col.first, col.second);
    });
    def.primary_key(key);
    return def;
}

} // namespace detail

/// The key columns of a typed table, named by member pointers:
/// `crdtsync::key(&task::id)`, `crdtsync::key(&pair::ns, &pair::k)`.
template <class T>
struct key_spec {
    std::vector<std::string> names;
};

template <class T, class... M>
[[nodiscard]] key_spec<T> key(M T::*... members) {
    key_spec<T> spec;
    T probe{};
    auto name_of = [&](auto member) {
        std::string found;
        boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
            const void* a = &boost::hana::second(pair)(probe);
            const void* b = &(probe.*member);
            if (a == b) found = boost::hana::to<const char*>(boost::hana::first(pair));
        });
        if (found.empty()) detail::raise(errc::schema, "key(): the member pointer is not a reflected member of the struct");
        return found;
    };
    (spec.names.push_back(name_of(members)), ...);
    return spec;
}

namespace detail {
/// Checks that struct table `def` (key `key_names`) fits the live table:
/// every member matches a live column (the table may have more nullable
/// columns, added later by ADD COLUMN), and the keys agree. Returns the
/// std::optional members the table lacks (the caller adds them, or refuses).
/// \throws schema_error (`errc::schema_mismatch`) naming what differs.
inline std::vector<column_def> struct_fit(const table_def& live, const table_def& def, const std::vector<std::string>& key_names) {
    std::vector<column_def> added;
    for (const auto& c : def.columns()) {
        auto i = live.find_column(c.name);
        if (!i && c.nullable) {
            added.push_back(c);
            continue;
        }
        if (!i)
            detail::raise(errc::schema_mismatch, "table " + live.qualified_name() + " has no column \"" + c.name +
                                                     "\" for the struct member of that name, and a NOT NULL member cannot be added "
                                                     "to a table that has rows without it: make the member std::optional");
        const auto& l = live.columns()[*i];
        if (l.type != c.type || l.nullable != c.nullable)
            detail::raise(errc::schema_mismatch, "column \"" + c.name + "\" of table " + live.qualified_name() + " is " +
                                                     table_def::column_ddl(l) + ", the struct member needs " +
                                                     table_def::column_ddl(c));
    }
    for (std::size_t i = 0; i < live.columns().size(); ++i)
        if (!def.find_column(live.columns()[i].name) && !live.columns()[i].nullable && !live.columns()[i].default_value)
            detail::raise(errc::schema_mismatch, "table " + live.qualified_name() + " has a NOT NULL column \"" +
                                                     live.columns()[i].name + "\" that the struct lacks");
    std::vector<std::string> live_key;
    for (auto i : live.key_columns()) live_key.push_back(live.columns()[i].name);
    if (live_key != key_names)
        detail::raise(errc::schema_mismatch, "table " + live.qualified_name() + " has another primary key than the one given");
    return added;
}
} // namespace detail

/// A table of structs. Obtain one with `replica.table<T>(name, key(...))`.
template <class Replica, class T>
class typed_table {
public:
    using transaction = typename Replica::transaction;

    typed_table(Replica& r, std::string name, table_def def, table_def struct_def, std::vector<std::string> key_names)
        : replica_(&r), name_(std::move(name)), def_(std::move(def)), struct_def_(std::move(struct_def)),
          key_names_(std::move(key_names)), generation_(r.schema_generation()) {}

    /// The live table's definition (as of the last use that checked it).
    [[nodiscard]] const table_def& definition() const noexcept { return def_; }

    /// Inserts a row (every member is written).
    void insert(transaction& tx, const T& v) const { tx.insert(name_, to_row(v)); }
    /// Writes the members that differ from the stored row with the same key.
    /// Returns false when no such row is visible.
    bool update(transaction& tx, const T& v) const { return tx.update(name_, key_of(v), to_row(v)); }
    /// Deletes the row with the same key as `v`. Returns false when absent.
    bool erase(transaction& tx, const T& v) const { return tx.erase(name_, key_of(v)); }
    /// Deletes the row with key `pk` (key column values in key order).
    bool erase_key(transaction& tx, const row_key& pk) const {
        checked();
        return tx.erase(name_, pk);
    }

    /// The row with key `pk`, read in `tx` (sees its own writes).
    [[nodiscard]] std::optional<T> get(transaction& tx, const row_key& pk) const {
        checked();
        auto r = tx.get(name_, pk);
        if (!r) return std::nullopt;
        return from_row(*r);
    }
    /// The committed row with key `pk`.
    [[nodiscard]] std::optional<T> get(const row_key& pk) const {
        checked();
        auto r = replica_->get(name_, pk);
        if (!r) return std::nullopt;
        return from_row(*r);
    }
    /// The committed row whose one key column is `k` (`tasks.get(1)`).
    template <class K>
        requires(!std::same_as<std::decay_t<K>, row_key> && std::constructible_from<value, const K&>)
    [[nodiscard]] std::optional<T> get(const K& k) const {
        return get(row_key{value{k}});
    }
    /// A page of committed rows in key order (see `row_scan`); for the next
    /// page, `{.from = key_of(last), .exclusive = true, .limit = n}`.
    [[nodiscard]] std::vector<T> scan(const row_scan& s) const {
        checked();
        std::vector<T> out;
        for (const auto& r : replica_->rows(name_, s)) out.push_back(from_row(r));
        return out;
    }
    /// Every committed row in key order.
    [[nodiscard]] std::vector<T> all() const {
        checked();
        std::vector<T> out;
        for (const auto& r : replica_->rows(name_)) out.push_back(from_row(r));
        return out;
    }

    [[nodiscard]] row to_row(const T& v) const {
        checked();
        row r;
        boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
            r[boost::hana::to<const char*>(boost::hana::first(pair))] = detail::to_value(boost::hana::second(pair)(v));
        });
        return r;
    }
    [[nodiscard]] T from_row(const row& r) const {
        T out{};
        boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
            const std::string name = boost::hana::to<const char*>(boost::hana::first(pair));
            using M = std::decay_t<decltype(boost::hana::second(pair)(out))>;
            auto it = r.find(name);
            boost::hana::second(pair)(out) = detail::from_value<M>(it == r.end() ? value{} : it->second, name);
        });
        return out;
    }
    [[nodiscard]] row_key key_of(const T& v) const {
        const auto r = to_row(v);
        row_key k;
        for (auto i : def_.key_columns()) k.push_back(r.at(def_.columns()[i].name));
        return k;
    }

    /// Checks the struct against the live table again when a migration
    /// changed some table definition since the last check.
    /// \throws schema_error (`errc::schema_mismatch`) when it no longer fits
    /// (a concurrent ADD COLUMN of a member's name with another type won, say).
    void checked() const {
        const auto g = replica_->schema_generation();
        if (g == generation_) return;
        auto live = replica_->find_table(name_);
        if (!live) detail::raise(errc::schema_mismatch, "table " + name_ + " no longer exists");
        const auto missing = detail::struct_fit(*live, struct_def_, key_names_);
        if (!missing.empty())
            detail::raise(errc::schema_mismatch, "table " + live->qualified_name() + " has no column \"" + missing.front().name +
                                                     "\" for the struct member of that name");
        def_ = std::move(*live);
        generation_ = g;
    }

private:
    Replica* replica_;
    std::string name_;
    mutable table_def def_;
    table_def struct_def_;
    std::vector<std::string> key_names_;
    mutable std::uint64_t generation_ = 0;
};


template <class Store, physical_clock Clock>
template <class T>
typed_table<replica<Store, Clock>, T> replica<Store, Clock>::table(std::string name, const key_spec<T>& key) {
    auto def = detail::struct_table_def<T>(name, key.names);
    if (auto live = find_table(name)) {
        // A std::optional member the table lacks evolves it: an ADD COLUMN
        // migration that travels to peers (never a second create with
        // another definition).
        const auto added = detail::struct_fit(*live, def, key.names);
        if (!added.empty()) {
            write([&](transaction& tx) {
                for (auto& c : added) tx.add_column(live->qualified_name(), c);
            });
            live = find_table(name);
        }
        return typed_table<replica, T>(*this, std::move(name), *live, std::move(def), key.names);
    }
    create_table(def);
    auto live = *find_table(name);
    return typed_table<replica, T>(*this, std::move(name), std::move(live), std::move(def), key.names);
}

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
