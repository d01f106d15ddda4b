// The pieces the text formats share (entryText.h): numbers, states, addresses, tuples, ages.
#pragma once
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "ctMessage.h"

namespace ctpurge::text {

// std::to_string allocates a temporary per number; to_chars writes in place.
template <typename T>
void num(std::string& out, T v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

// The state's name (or number), unquoted; false when the protocol has no states.
bool appendStateName(std::string& out, uint8_t proto, uint8_t state);
// The state as JSON: "ESTABLISHED", or null.
void appendState(std::string& out, uint8_t proto, uint8_t state);
// RFC 5952 text, exactly like formatIpv6() in src/parse/address.ts (no embedded IPv4).
void appendAddress(std::string& out, uint8_t family, const uint8_t* a);
// Each field's text (separator and name), then its number.
void appendNumbers(std::string& out, std::initializer_list<std::pair<const char*, unsigned>> fields);
// A tuple as JSON members.
void appendTuple(std::string& out, uint8_t family, const Tuple& t);
// Math.round(age * 1000) / 1000, printed the way JavaScript prints that number.
void appendAge(std::string& out, double age);

}  // namespace ctpurge::text
