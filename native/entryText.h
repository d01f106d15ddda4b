// Entries as text, formatted here so `ctpurge list` of a million entries (and `ctpurge watch`)
// builds no JS object per entry: NDJSON, `conntrack -L` lines and the table. Kernel tests hold
// each to an independent reference written in TypeScript (test/helpers/formats.ts).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "ctMessage.h"
#include "policyTimeouts.h"

namespace ctpurge {

void appendNdjson(std::string& out, const Entry& e, const Ages& ages);

// An audit-log line is a list --json line with when and by which run: the line just appended
// (ending "}\n") gets ,"time":"<wall clock, ms>" and tag (a JSON fragment of more members,
// starting with a comma) before its closing brace.
void stampNdjson(std::string& out, const std::string& tag);

// A wall-clock time as a JSON string: "2026-12-03T23:40:01.123Z".
void appendIsoTime(std::string& out, uint64_t ns);

// One line shaped like `conntrack -L` prints it (delta-time against nowNs, wall clock).
void appendConntrackLine(std::string& out, const Entry& e, uint64_t nowNs);

// The rows of the `ctpurge list` table, cell by cell.
constexpr size_t kTableColumns = 11;
struct TableRows {
  std::string text;            // the cells, back to back
  std::vector<uint32_t> ends;  // where each cell ends in text, kTableColumns per row
  void add(const Entry& e, const Ages& ages);
  void append(const TableRows& o);
  size_t rows() const { return ends.size() / kTableColumns; }
  bool empty() const { return ends.empty(); }
  void clear() {
    text.clear();
    ends.clear();
  }
};

// As TableWriter in src/cli/format.ts: columns two spaces apart, the header above the first rows,
// widths that only grow, so a table written batch after batch stays aligned. The first
// kHeadRows rows of all lanes are held and laid out together, so that a table of that size is
// aligned as a whole, whichever lane's rows come first.
class TableLayout {
 public:
  static constexpr size_t kHeadRows = 4096;
  TableLayout();
  void setLanes(size_t lanes) { lanesLeft_ = lanes; }
  // Lays out rows (and empties it) at the end of out, or holds them with the head of the table.
  // laneDone: the calling lane has no more rows. Returns the number of rows laid out.
  size_t write(TableRows& rows, bool laneDone, std::string& out);

 private:
  void format(const TableRows& rows, std::string& out);

  std::array<size_t, kTableColumns> widths_;
  bool headerDone_ = false;
  bool holding_ = true;
  size_t lanesLeft_ = 1;
  TableRows head_;
};

}  // namespace ctpurge
