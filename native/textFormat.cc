#include "textFormat.h"

#include <string>

namespace ctpurge {

const char* textFormatName(TextFormat f) {
  switch (f) {
    case TextFormat::Records: return "records";
    case TextFormat::Ndjson: return "ndjson";
    case TextFormat::Conntrack: return "conntrack";
    case TextFormat::Table: return "table";
  }
  return "?";
}

TextFormat textFormatFromJs(const Napi::Value& v, TextFormat fallback, std::initializer_list<TextFormat> allowed, const char* what) {
  if (v.IsUndefined()) return fallback;
  std::string names;
  for (TextFormat f : allowed) {
    if (v.IsString() && v.As<Napi::String>().Utf8Value() == textFormatName(f)) return f;
    names += names.empty() ? "" : ", ";
    names += textFormatName(f);
  }
  throw Napi::TypeError::New(v.Env(), std::string("ctpurge: ") + what + " format must be one of " + names);
}

}  // namespace ctpurge
