#pragma once
// The generic reader and writer of described wire types. A wire type whose
// JSON members are listed once in a `description<T>` specialisation (see
// wire/types.hpp and docs/wire.md, "Adding a member or a message") is read
// and written by the two templates at the end of this file: nothing else
// names its members.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
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
/// `required`, `when_set`, `always` and `embedded` entries, with `what`, the
/// phrase error messages use for the object (`"a snapshot footer chunk"`).
/// A type with a `wire_type` (its own, or its description's) gets a `type`
/// member first, checked on reading. Optionally, `together`
/// (`both_or_neither(&T::a, &T::b)`): two members that travel together or
/// not at all.
template <class T>
struct description;

template <class T>
concept described = requires {
    description<T>::members;
    description<T>::what;
};

/// A type that names its own `type` member (messages, snapshot chunks).
template <class T>
concept has_own_wire_type = requires { T::wire_type; };

/// A type whose object has a `type` member: its own `wire_type`, or its
/// description's (the facts: `change.hpp` keeps to C++).
template <class T>
concept typed_wire_object = has_own_wire_type<T> || requires { description<T>::wire_type; };

template <typed_wire_object T>
inline constexpr std::string_view wire_type_of = [] {
    if constexpr (has_own_wire_type<T>) return std::string_view(T::wire_type);
    else return std::string_view(description<T>::wire_type);
}();

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

/// Two members (both in the description) that travel together or not at
/// all: a reader fails when only one is set, a writer refuses to write one
/// alone (`usage_error`).
template <class T, class A, class B>
struct pair_rule {
    A T::*first;
    B T::*second;
};

template <class T, class A, class B>
constexpr pair_rule<T, A, B> both_or_neither(A T::*a, B T::*b) {
    return {a, b};
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
using members_tuple_t = std::remove_cvref_t<decltype(members_of<T>)>;

template <class T>
inline constexpr std::size_t member_count_v = std::tuple_size_v<members_tuple_t<T>>;

template <class E>
struct embedded_type {
    using type = void;
};
template <class T, class S>
struct embedded_type<embedded<T, S>> {
    using type = S;
};

/// True for an `embed(...)` entry, false for a member.
template <class E>
inline constexpr bool is_embedded_v = !std::is_void_v<typename embedded_type<std::remove_cvref_t<E>>::type>;

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

/// The wire name of `T`'s member `ptr` (one of its description's).
template <class T, class M>
constexpr std::string_view name_of(M T::*ptr) {
    std::string_view name;
    for_each_member<T>([&](const auto& m, std::size_t) {
        if constexpr (!is_embedded_v<decltype(m)> && std::is_same_v<decltype(m.ptr), M T::*>)
            if (m.ptr == ptr) name = m.name;
    });
    return name;
}

/// 1 for a type whose objects have a `type` member (it comes first), else 0.
template <class T>
inline constexpr std::size_t type_slots = typed_wire_object<T> ? 1 : 0;

/// How many of `T`'s first members (its `type` first, if it has one) the
/// reader can recognise by one compare (names of at most 13 characters).
template <class T>
constexpr std::size_t order_size() {
    std::size_t n = type_slots<T>;
    bool open = true;
    for_each_member<T>([&](const auto& m, std::size_t) {
        if constexpr (is_embedded_v<decltype(m)>) open = false;
        else if (open && m.name.size() <= 13) ++n;
        else open = false;
    });
    return n;
}

/// Those members' names, in the order writers put them: `read` expects
/// them so first. They are plain members (no `embed`), so entry `i` is the
/// description's member `i - type_slots<T>`, with that presence bit.
template <class T>
inline constexpr auto member_order = [] {
    std::array<member_name, order_size<T>()> a{};
    std::size_t i = 0;
    if constexpr (typed_wire_object<T>) a[i++] = member_name("type");
    for_each_member<T>([&](const auto& m, std::size_t) {
        if constexpr (!is_embedded_v<decltype(m)>)
            if (i < a.size()) a[i++] = member_name(m.name);
    });
    return a;
}();

template <class T, class M, class Enc>
Enc get_encoding(const member<T, M, Enc>&);

/// Reads the value of member entry `m` into `out`, and notes it in `seen`.
template <class E, class T>
[[gnu::always_inline]] inline void read_entry(reader& r, const path& kp, const E& m, T& out, std::uint64_t& seen,
                                              std::size_t bit) {
    auto& x = out.*(m.ptr);
    if (m.pres != presence::required && m.null_is_empty && r.try_null(kp)) x = {};
    else decltype(get_encoding(m))::get(r, kp, x);
    seen |= std::uint64_t(1) << bit;
}

/// Reads member `key` of `out` if it is one of `T`'s; false if not.
template <class T>
bool read_member(reader& r, std::string_view key, const path& kp, T& out, std::uint64_t& seen, std::size_t base) {
    bool found = false;
    for_each_member<T>([&](const auto& m, std::size_t bit) {
        if (found) return;
        if constexpr (is_embedded_v<decltype(m)>) {
            found = read_member(r, key, kp, out.*(m.ptr), seen, base + bit);
        } else if (key == m.name) {
            read_entry(r, kp, m, out, seen, base + bit);
            found = true;
        }
    });
    return found;
}

/// Sets every member that may be absent to its empty value.
template <class T>
void reset_members(T& out) {
    for_each_member<T>([&](const auto& m, std::size_t) {
        if constexpr (is_embedded_v<decltype(m)>) reset_members(out.*(m.ptr));
        else if (m.pres != presence::required) out.*(m.ptr) = {};
    });
}

/// The presence bits of `T`'s required members (an embedded type's among them).
template <class T>
constexpr std::uint64_t required_bits(std::size_t base = 0) {
    std::uint64_t bits = 0;
    for_each_member<T>([&](const auto& m, std::size_t bit) {
        using E = std::remove_cvref_t<decltype(m)>;
        if constexpr (is_embedded_v<E>) bits |= required_bits<typename embedded_type<E>::type>(base + bit);
        else if (m.pres == presence::required) bits |= std::uint64_t(1) << (base + bit);
    });
    return bits;
}

/// Fails naming the first required member of `T` that `seen` lacks.
template <class T>
void require_members(std::uint64_t seen, const path& p, std::size_t base) {
    for_each_member<T>([&](const auto& m, std::size_t bit) {
        using E = std::remove_cvref_t<decltype(m)>;
        if constexpr (is_embedded_v<E>) require_members<typename embedded_type<E>::type>(seen, p, base + bit);
        else if (m.pres == presence::required) require(((seen >> (base + bit)) & 1) != 0, p, m.name);
    });
}

/// The names of `T`'s `together` members, the set one first, if only one
/// of them is set; nothing when both or neither are.
template <class T>
std::optional<std::pair<std::string_view, std::string_view>> lone_member(const T& x) {
    if constexpr (requires { description<T>::together; }) {
        constexpr auto& rule = description<T>::together;
        constexpr std::string_view first = name_of<T>(rule.first), second = name_of<T>(rule.second);
        static_assert(!first.empty() && !second.empty(), "`together` names two members of the description");
        const bool a = is_set(x.*(rule.first)), b = is_set(x.*(rule.second));
        if (a != b) return a ? std::pair{first, second} : std::pair{second, first};
    }
    return std::nullopt;
}

template <class Sink, class T>
void write_members(Sink& s, const T& x) {
    for_each_member<T>([&](const auto& m, std::size_t) {
        if constexpr (is_embedded_v<decltype(m)>) {
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

/// Where `read` stands in an object.
struct read_state {
    std::uint64_t seen = 0; ///< presence bits of the members read
    bool type = false;      ///< `type` read
    bool more = false;      ///< members follow
    bool in_order = true;   ///< so far, the members came in `member_order`
};

/// Step `I` of `read`'s fast path: if the next member is `member_order<T>[I]`,
/// reads it straight into its C++ member.
template <class T, std::size_t I>
[[gnu::always_inline]] inline void read_in_order(reader& r, const path& p, T& out, read_state& st) {
    constexpr bool is_type = typed_wire_object<T> && I == 0;
    constexpr const member_name& name = member_order<T>[I];
    if (!st.more || !st.in_order || (is_type && st.type)) return;
    if (!r.member_is(name)) {
        st.in_order = false;
        return;
    }
    const path kp = p / name.name;
    if constexpr (is_type) {
        expect_type(r, kp, wire_type_of<T>);
        st.type = true;
    } else {
        constexpr std::size_t m = I - type_slots<T>;
        read_entry(r, kp, std::get<m>(members_of<T>), out, st.seen, m);
    }
    st.more = r.after_member(kp);
}

/// Reads a described type: an object with its members in any order, unknown
/// members skipped; a missing required member, a `type` other than the
/// type's, or one of two `together` members alone, is an error naming its
/// path. `head_size`: see `read_variant` (0: none).
///
/// The fast path is generated from the description: while the members come
/// in `member_order` (as every writer puts them), each is recognised by one
/// comparison and read straight into its C++ member; from the first one
/// that does not, members are looked up by name.
template <described T>
void read(reader& r, const path& p, T& out, std::size_t head_size = 0) {
    static_assert(bit_count<T>::value <= 64, "at most 64 members");
    constexpr auto& order = member_order<T>;
    reset_members(out);
    read_state st;
    st.type = head_size != 0;
    st.more = r.enter_object(p, description<T>::what, st.type ? order[0].name : std::string_view{}, head_size);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (read_in_order<T, I>(r, p, out, st), ...);
    }(std::make_index_sequence<order.size()>{});
    std::string escaped_key;
    while (st.more) {
        const std::string_view key = r.member_key(p, escaped_key);
        const path kp = p / key;
        bool found = false;
        if constexpr (typed_wire_object<T>) {
            if (key_is(key, "type")) {
                expect_type(r, kp, wire_type_of<T>);
                st.type = found = true;
            }
        }
        if (!found && !read_member(r, key, kp, out, st.seen, 0)) r.skip(kp);
        st.more = r.after_member(kp);
    }
    if constexpr (typed_wire_object<T>) require(st.type, p, "type");
    if (constexpr std::uint64_t all = required_bits<T>(); (st.seen & all) != all) [[unlikely]]
        require_members<T>(st.seen, p, 0);
    if (const auto lone = lone_member(out)) [[unlikely]]
        fail(p / lone->first, std::string(lone->first) + " without " + std::string(lone->second) +
                                  ": they travel together or not at all");
}

/// Writes a described type: `type` first if it has one, then its members in
/// description order.
/// \throws usage_error for one of two `together` members alone.
template <class Sink, described T>
void write(Sink& s, const T& x) {
    if (const auto lone = lone_member(x)) [[unlikely]]
        ::crdtsync::detail::raise(errc::invalid_argument,
                                  "cannot write " + std::string(description<T>::what) + " with " +
                                      std::string(lone->first) + " but no " + std::string(lone->second) +
                                      ": they travel together or not at all");
    s.begin_object();
    if constexpr (typed_wire_object<T>) {
        s.field("type");
        s.ascii(wire_type_of<T>);
    }
    write_members(s, x);
    s.end_object();
}

// ---- variants of typed objects: the `type` member picks the alternative

/// `{"type":"<wire type>"`: how an object of type `T` starts when its writer
/// put `type` first, as every writer does.
template <class T>
inline constexpr auto type_head = [] {
    constexpr std::string_view open = R"({"type":")", t = wire_type_of<T>;
    std::array<char, open.size() + t.size() + 1> a{};
    std::size_t i = 0;
    for (char c : open) a[i++] = c;
    for (char c : t) a[i++] = c;
    a[i] = '"';
    return a;
}();

/// Whether `text` starts with `T`'s type head and the member ends there.
template <class T>
[[gnu::always_inline]] inline bool starts_with_head(std::string_view text) noexcept {
    constexpr auto& h = type_head<T>;
    return text.size() > h.size() && (text[h.size()] == ',' || text[h.size()] == '}') &&
           std::memcmp(text.data(), h.data(), h.size()) == 0;
}

/// `"a" or "b"`, or `one of a, b, c`: the wire types of `V`'s alternatives.
template <class V>
std::string wire_type_list() {
    constexpr std::size_t n = std::variant_size_v<V>;
    std::string out = n == 2 ? "" : "one of ";
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((out += (I == 0 ? "" : n == 2 ? " or " : ", "),
          out += n == 2 ? "\"" + std::string(wire_type_of<std::variant_alternative_t<I, V>>) + "\""
                        : std::string(wire_type_of<std::variant_alternative_t<I, V>>)),
         ...);
    }(std::make_index_sequence<n>{});
    return out;
}

/// The `type` member of the object that comes next, read ahead.
inline std::string peek_type(reader& r, const path& p, std::string_view what) {
    auto t = r.peek_member(p, what, "type");
    if (!t) fail(p / "type", "required member is missing");
    return std::move(*t);
}

/// Which alternative of `V` the object that comes next is (its index), and
/// the length of its opening text `{"type":"<wire type>"` when it starts so
/// (else 0): the object's reader then takes that member as read.
struct alternative_head {
    std::size_t index;
    std::size_t head_size;
};

template <class V>
alternative_head peek_alternative(reader& r, const path& p, std::string_view what) {
    constexpr std::size_t n = std::variant_size_v<V>;
    alternative_head h{n, 0};
    // Writers put `type` first: recognise that without reading ahead.
    const std::string_view rest = r.rest();
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (void)((starts_with_head<std::variant_alternative_t<I, V>>(rest)
                    ? (h = {I, type_head<std::variant_alternative_t<I, V>>.size()}, true)
                    : false) ||
               ...);
    }(std::make_index_sequence<n>{});
    if (h.index != n) {
        r.check_read_ahead(p, p / "type"); // the limits break where the read-ahead would break them
        return h;
    }
    const std::string t = peek_type(r, p, what);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (void)((t == wire_type_of<std::variant_alternative_t<I, V>> ? (h.index = I, true) : false) || ...);
    }(std::make_index_sequence<n>{});
    if (h.index == n)
        fail(p / "type", "expected " + wire_type_list<V>() + ", got the string " + quoted_excerpt(t));
    return h;
}

/// Reads the object that comes next as the alternative of variant `V` its
/// `type` names, into `place(std::integral_constant<std::size_t, I>{})`, the
/// `I`th alternative's storage (built in place: nothing is moved).
template <class V, class Place>
void read_variant(reader& r, const path& p, std::string_view what, Place&& place) {
    const alternative_head h = peek_alternative<V>(r, p, what);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (void)((h.index == I ? (read(r, p, place(std::integral_constant<std::size_t, I>{}), h.head_size), true)
                             : false) ||
               ...);
    }(std::make_index_sequence<std::variant_size_v<V>>{});
}

/// Reads a variant in place: an alternative it already holds is read into.
template <class V>
void read_variant(reader& r, const path& p, V& out, std::string_view what) {
    read_variant<V>(r, p, what, [&](auto i) -> auto& {
        constexpr std::size_t index = decltype(i)::value;
        if (out.index() != index) out.template emplace<index>();
        return std::get<index>(out);
    });
}

/// A change, a snapshot chunk or a message: its alternative, which names
/// itself in its `type`.
template <class Sink, class... Ts>
void write(Sink& s, const std::variant<Ts...>& v) {
    std::visit([&](const auto& x) { write(s, x); }, v);
}

} // namespace detail
} // namespace wire
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
