// The formats the addon writes entries in: its packed records (entryRecord.h) and the text
// lines of entryText.h. One name per format and one reader of it, for dumps, exports and events.
#pragma once
#include <napi.h>

#include <initializer_list>

namespace ctpurge {

enum class TextFormat { Records, Ndjson, Conntrack, Table };

// The name JS gives it: "records", "ndjson", "conntrack", "table".
const char* textFormatName(TextFormat f);

// Reads a format argument: undefined gives fallback; otherwise it must be the name of one of
// allowed. Anything else is a TypeError naming what takes it and what it takes: an unknown
// format is refused, never read as the default.
TextFormat textFormatFromJs(const Napi::Value& v, TextFormat fallback, std::initializer_list<TextFormat> allowed, const char* what);

}  // namespace ctpurge
