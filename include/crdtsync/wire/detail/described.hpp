#pragma once
// The generic reader and writer of described wire types. A wire type whose
// JSON members are listed once in a `description<T>` specialisation (see
// wire/types.hpp and docs/wire.md, "Adding a member or a message") is read
// and written by the two templates at the end of this file: nothing else
// names its members.

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <crdtsync/wire/detail/encodings.hpp>
#include <crdtsync/wire/detail/reader.hpp>
#include <crdtsync/wire/detail/text.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace wire {
namespace detail {

/// The members of wire type `T`, in the order writers put them (Quereus's
/// order, byte for byte), as a `static constexpr std::tuple members` of
/// `required`, `when_set` and `embedded` entries, with `what`, the phrase
/// error messages use for the object (`"a snapshot footer chunk"`). A type
/// with a `wire_type` gets a `type` member first, checked on reading.
template <class T>
struct description;

template <class T>
concept described = requires {
    description<T>::members;
    description<T>::what;
};

template <class T>
concept typed_wire_object = requires { T::wire_type; };

template <class T>
struct is_std_optional : std::false_type {};
template <class T>
struct is_std_optional<std::optional<T>> : std::true_type {};

// ---- leaf values of members: numbers by their C++ type, the rest by their
// own `read` / `write` (encodings.hpp, types.hpp, or a described type's)

template <class M>
void read_field(reader& r, const path& p, M& x) {
    if constexpr (std::is_same_v<M, bool>) {
        x = r.boolean(p);
    } else if constexpr (std::is_same_v<M, std::int64_t>) { // non-negative on the wire (schemaVersion)
        x = static_cast<std::int64_t>(r.unsigned_integer(p, std::uint64_t(std::numeric_limits<std::int64_t>::max())));
    } else if constexpr (std::is_integral_v<M> && std::is_unsigned_v<M>) {
        x = static_cast<M>(r.unsigned_integer(p, std::numeric_limits<M>::max()));
    } else {
        read(r, p, x);
    }
}

template <class Sink, class M>
void write_field(Sink& s, const M& x) {
    if constexpr (std::is_same_v<M, bool>) s.boolean(x);
    else if constexpr (std::is_same_v<M, std::int64_t>) s.integer(x);
    else if constexpr (std::is_integral_v<M> && std::is_unsigned_v<M>) s.uinteger(static_cast<std::uint64_t>(x));
    else write(s, x);
}

/// A member's encoding: how its value is read and written. `plain` is the
/// value's own (an `std::optional`'s is its content's); a member with a
/// special rule names another struct with the same two functions.
struct plain {
    template <class M>
    static void get(reader& r, const path& p, M& x) {
        if constexpr (is_std_optional<M>::value) read_field(r, p, x.emplace());
        else read_field(r, p, x);
    }
    template <class Sink, class M>
    static void put(Sink& s, const M& x) {
        if constexpr (is_std_optional<M>::value) write_field(s, *x);
        else write_field(s, x);
    }
};

enum class presence : unsigned char {
    required, ///< must be there; always written
    when_set, ///< absent (or null) is empty; written only when set
    always,   ///< absent (or null) is empty; always written
};

template <class T, class M, class Enc>
struct member {
    std::string_view name;
    M T::*ptr;
    presence pres;
    bool null_is_empty; ///< for `when_set`: null reads as empty (else it is an error)
};

/// The members of `S`, written and read as members of the enclosing object
/// (the `apply_result` message carries an apply result's members beside
/// its `type` and `requestId`).
template <class T, class S>
struct embedded {
    S T::*ptr;
};

/// A member that must be present, and is always written.
template <class Enc = plain, class T, class M>
constexpr member<T, M, Enc> required(std::string_view name, M T::*ptr) {
    return {name, ptr, presence::required, false};
}

/// A member written only when set: an `std::optional` with a value, or
/// anything else unequal to its default (a non-empty list, a non-zero
/// count). Absent, or null when `null_is_empty`, reads as empty.
template <class Enc = plain, class T, class M>
constexpr member<T, M, Enc> when_set(std::string_view name, M T::*ptr, bool null_is_empty = true) {
    return {name, ptr, presence::when_set, null_is_empty};
}

/// A member always written, even empty; absent or null reads as empty.
template <class Enc = plain, class T, class M>
constexpr member<T, M, Enc> always(std::string_view name, M T::*ptr) {
    return {name, ptr, presence::always, true};
}

template <class T, class S>
constexpr embedded<T, S> embed(S T::*ptr) {
    return {ptr};
}

template <class M>
[[nodiscard]] bool is_set(const M& x) {
    if constexpr (is_std_optional<M>::value) return x.has_value();
    else return !(x == M{});
}

// ---- walking a description

template <class T>
inline constexpr auto& members_of = description<T>::members;

template <class T>
inline constexpr std::size_t member_count_v = std::tuple_size_v<std::remove_cvref_t<decltype(members_of<T>)>>;

template <class E>
struct embedded_type {
    using type = void;
};
template <class T, class S>
struct embedded_type<embedded<T, S>> {
    using type = S;
};

template <class T>
using members_tuple_t = std::remove_cvref_t<decltype(members_of<T>)>;

/// Presence bits a type's members take (an embedded type's take one each).
template <class T>
struct bit_count;

template <class E>
struct member_width : std::integral_constant<std::size_t, 1> {};
template <class T, class S>
struct member_width<embedded<T, S>> : bit_count<S> {};

template <class Tuple>
struct width_sum;
template <class... Es>
struct width_sum<std::tuple<Es...>>
    : std::integral_constant<std::size_t, (std::size_t(0) + ... + member_width<Es>::value)> {};

template <class T>
struct bit_count : width_sum<members_tuple_t<T>> {};

/// Calls `f(entry, first_bit)` for each member entry of `T`, in order.
template <class T, class F>
constexpr void for_each_member(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        [[maybe_unused]] std::size_t bit = 0;
        ((f(std::get<I>(members_of<T>), bit), bit += member_width<std::tuple_element_t<I, members_tuple_t<T>>>::value),
         ...);
    }(std::make_index_sequence<member_count_v<T>>{});
}

/// How many of `T`'s first members (its `type` first, if it has one) the
/// reader can recognise by one compare (names of at most 13 characters).
template <class T>
constexpr std::size_t order_size() {
    std::size_t n = typed_wire_object<T> ? 1 : 0;
    bool open = true;
    for_each_member<T>([&](const auto& m, std::size_t) {
        using E = std::remove_cvref_t<decltype(m)>;
        if constexpr (!std::is_void_v<typename embedded_type<E>::type>) open = false;
        else if (open && m.name.size() <= 13) ++n;
        else open = false;
    });
    return n;
}

/// Those members' names, for `reader::object`: the order writers put them in.
template <class T>
inline constexpr auto member_order = [] {
    std::array<member_name, order_size<T>()> a{};
    std::size_t i = 0;
    if constexpr (typed_wire_object<T>) a[i++] = member_name("type");
    for_each_member<T>([&](const auto& m, std::size_t) {
        using E = std::remove_cvref_t<decltype(m)>;
        if constexpr (std::is_void_v<typename embedded_type<E>::type>)
            if (i < a.size()) a[i++] = member_name(m.name);
    });
    return a;
}();

template <class T, class M, class Enc>
Enc get_encoding(const member<T, M, Enc>&);

/// Reads member `key` of `out` if it is one of `T`'s; false if not.
template <class T>
bool read_member(reader& r, std::string_view key, const path& kp, T& out, std::uint64_t& seen, std::size_t base) {
    bool found = false;
    for_each_member<T>([&](const auto& m, std::size_t bit) {
        if (found) return;
        using E = std::remove_cvref_t<decltype(m)>;
        if constexpr (!std::is_void_v<typename embedded_type<E>::type>) {
            found = read_member(r, key, kp, out.*(m.ptr), seen, base + bit);
        } else if (key == m.name) {
            auto& x = out.*(m.ptr);
            if (m.pres != presence::required && m.null_is_empty && r.try_null(kp)) x = {};
            else decltype(get_encoding(m))::get(r, kp, x);
            seen |= std::uint64_t(1) << (base + bit);
            found = true;
        }
    });
    return found;
}

/// Sets every member that may be absent to its empty value.
template <class T>
void reset_members(T& out) {
    for_each_member<T>([&](const auto& m, std::size_t) {
        using E = std::remove_cvref_t<decltype(m)>;
        if constexpr (!std::is_void_v<typename embedded_type<E>::type>) reset_members(out.*(m.ptr));
        else if (m.pres != presence::required) out.*(m.ptr) = {};
    });
}

/// Fails naming the first required member of `T` that `seen` lacks.
template <class T>
void require_members(std::uint64_t seen, const path& p, std::size_t base) {
    for_each_member<T>([&](const auto& m, std::size_t bit) {
        using E = std::remove_cvref_t<decltype(m)>;
        if constexpr (!std::is_void_v<typename embedded_type<E>::type>)
            require_members<typename embedded_type<E>::type>(seen, p, base + bit);
        else if (m.pres == presence::required) require(((seen >> (base + bit)) & 1) != 0, p, m.name);
    });
}

template <class Sink, class T>
void write_members(Sink& s, const T& x) {
    for_each_member<T>([&](const auto& m, std::size_t) {
        using E = std::remove_cvref_t<decltype(m)>;
        if constexpr (!std::is_void_v<typename embedded_type<E>::type>) {
            write_members(s, x.*(m.ptr));
        } else {
            const auto& v = x.*(m.ptr);
            if (m.pres == presence::when_set && !is_set(v)) return;
            s.field(m.name);
            decltype(get_encoding(m))::put(s, v);
        }
    });
}

/// Reads member `type` and checks it is `wanted`.
inline void expect_type(reader& r, const path& p, std::string_view wanted) {
    const auto m = r.mark();
    std::string scratch;
    if (r.string(p, scratch) != wanted) {
        r.rewind(m);
        fail(p, "expected \"" + std::string(wanted) + "\", got " + r.describe_next());
    }
}

/// Reads a described type: an object with its members in any order, unknown
/// members skipped; a missing required member, or a `type` other than
/// `T::wire_type`, is an error naming its path.
template <described T>
void read(reader& r, const path& p, T& out) {
    static_assert(bit_count<T>::value <= 64, "at most 64 members");
    reset_members(out);
    std::uint64_t seen = 0;
    bool type = false;
    r.object(p, description<T>::what, [&](std::string_view key, const path& kp) {
        if constexpr (typed_wire_object<T>) {
            if (key_is(key, "type")) {
                expect_type(r, kp, T::wire_type);
                type = true;
                return;
            }
        }
        if (!read_member(r, key, kp, out, seen, 0)) r.skip(kp);
    }, member_order<T>);
    if constexpr (typed_wire_object<T>) require(type, p, "type");
    require_members<T>(seen, p, 0);
}

/// Writes a described type: `type` first if it has one, then its members in
/// description order.
template <class Sink, described T>
void write(Sink& s, const T& x) {
    s.begin_object();
    if constexpr (typed_wire_object<T>) {
        s.field("type");
        s.ascii(T::wire_type);
    }
    write_members(s, x);
    s.end_object();
}

} // namespace detail
} // namespace wire
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
