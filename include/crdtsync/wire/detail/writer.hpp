#pragma once
// The writer: sinks the encoders write through (compact text or an
// nlohmann::json DOM), and a DOM written through a sink.

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <crdtsync/detail/utf8.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/wire/decode_options.hpp>
#include <crdtsync/wire/detail/text.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace wire {
namespace detail {

// ---------------------------------------------------------------------------
// Sinks: the encoders write through one of these. `text_sink` appends compact
// JSON text; `dom_sink` builds an nlohmann::json value.

class text_sink {
public:
    std::string out;

    void begin_object() { open('{'); }
    void end_object() { close('}'); }
    void begin_array() { open('['); }
    void end_array() { close(']'); }
    /// A member name known to need no escaping (the wire's field names).
    void field(std::string_view name) {
        quoted(name);
        out += ':';
        comma_ = false;
    }
    void key(std::string_view name) {
        sep();
        append_json_string(out, name);
        out += ':';
        comma_ = false;
    }
    void null() { sep(); out += "null"; comma_ = true; }
    void boolean(bool b) { sep(); out += b ? "true" : "false"; comma_ = true; }
    void integer(std::int64_t i) { sep(); append_integer(out, i); comma_ = true; }
    void uinteger(std::uint64_t i) { sep(); append_integer(out, i); comma_ = true; }
    void real(double d) { sep(); append_js_number(out, d); comma_ = true; }
    void string(std::string_view s) { sep(); append_json_string(out, s); comma_ = true; }
    /// A string known to need no escaping (base64 text).
    void ascii(std::string_view s) {
        quoted(s);
        comma_ = true;
    }

private:
    void sep() {
        if (comma_) out += ',';
    }
    void open(char c) {
        sep();
        out += c;
        comma_ = false;
    }
    void close(char c) {
        out += c;
        comma_ = true;
    }
    void quoted(std::string_view s) {
        sep();
        out += '"';
        out += s;
        out += '"';
    }
    bool comma_ = false;
};

class dom_sink {
public:
    json root;

    void begin_object() { stack_.push_back(&place(json::object())); }
    void end_object() { stack_.pop_back(); }
    void begin_array() { stack_.push_back(&place(json::array())); }
    void end_array() { stack_.pop_back(); }
    void field(std::string_view name) { key_.assign(name); }
    void key(std::string_view name) {
        check_utf8(name);
        key_.assign(name);
    }
    void null() { place(json(nullptr)); }
    void boolean(bool b) { place(json(b)); }
    void integer(std::int64_t i) { place(json(i)); }
    void uinteger(std::uint64_t i) { place(json(i)); }
    /// Integral doubles within the safe range become JSON integers, so the
    /// value prints as JavaScript prints it and compares equal to a parse of
    /// Quereus text.
    void real(double d) {
        if (!std::isfinite(d)) place(json(nullptr));
        else if (d == std::trunc(d) && std::fabs(d) <= double(max_safe_integer))
            place(json(static_cast<std::int64_t>(d)));
        else place(json(d));
    }
    void string(std::string_view s) {
        check_utf8(s);
        place(json(std::string(s)));
    }
    void ascii(std::string_view s) { place(json(std::string(s))); }

private:
    static void check_utf8(std::string_view s) {
        if (const auto i = ::crdtsync::detail::utf8_invalid_at(s); i != s.size())
            ::crdtsync::detail::raise(errc::invalid_value,
                                      "text is not valid UTF-8 (byte " + std::to_string(i) + "), it cannot travel in JSON");
    }
    json& place(json&& v) {
        if (stack_.empty()) {
            root = std::move(v);
            return root;
        }
        json& top = *stack_.back();
        if (top.is_array()) {
            auto& arr = *top.get_ptr<json::array_t*>();
            arr.push_back(std::move(v));
            return arr.back();
        }
        auto& slot = (*top.get_ptr<json::object_t*>())[key_];
        slot = std::move(v);
        return slot;
    }
    std::vector<json*> stack_;
    std::string key_;
};


template <class Sink>
void write_dom(Sink& s, const json& j) {
    switch (j.type()) {
    case json::value_t::null: s.null(); return;
    case json::value_t::boolean: s.boolean(j.get<bool>()); return;
    case json::value_t::number_integer: s.integer(j.get<std::int64_t>()); return;
    case json::value_t::number_unsigned: s.uinteger(j.get<std::uint64_t>()); return;
    case json::value_t::number_float: s.real(j.get<double>()); return;
    case json::value_t::string: s.string(j.get_ref<const std::string&>()); return;
    case json::value_t::array:
        s.begin_array();
        for (const auto& e : j) write_dom(s, e);
        s.end_array();
        return;
    case json::value_t::object:
        s.begin_object();
        for (const auto& [k, v] : *j.get_ptr<const json::object_t*>()) {
            s.key(k);
            write_dom(s, v);
        }
        s.end_object();
        return;
    case json::value_t::binary:
    case json::value_t::discarded: s.null(); return;
    }
}

template <class Sink>
void write_tagged(Sink& s, std::string_view tag, std::string_view text) {
    s.begin_object();
    s.field(tag);
    s.ascii(text);
    s.end_object();
}

} // namespace detail
} // namespace wire
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
