#include "exportWorker.h"

#include <atomic>
#include <string>
#include <vector>

#include "dumpReader.h"
#include "entryText.h"
#include "jsConvert.h"
#include "lanes.h"
#include "lineSink.h"

namespace ctpurge {
namespace {

// Lines are written in pieces of about this size (and after every dump buffer).
constexpr size_t kWriteBytes = 256 * 1024;

struct ExportOptions {
  int fd = -1;
  TextFormat format = TextFormat::Ndjson;
  double limit = -1;  // < 0: no limit
};

class ExportWorker : public PromiseWorker {
 public:
  ExportWorker(Napi::Env env, NamespacePtr ns, std::vector<Lane> lanes, ExportOptions opts, Napi::Value cancel)
      : PromiseWorker(env, "ctpurge:export"), ns_(std::move(ns)), lanes_(std::move(lanes)), opts_(opts), cancel_(cancel) {}

 protected:
  void Run() override {
    if (cancelled()) {
      cancelled_ = true;
      return;
    }
    const int nsFd = ns_->fd.get();
    PolicyTimeouts timeouts;
    inNetns(nsFd, [&] { timeouts = PolicyTimeouts::readFromProc(); });
    const uint64_t nowNs = realtimeNowNs();
    LineSink sink(opts_.fd, [this] { return cancelled(); });
    TableLayout table;  // the table's column widths, shared by the lanes (laid out under the sink's lock)
    table.setLanes(lanes_.size());
    std::vector<double> written(lanes_.size(), 0);
    std::atomic<int64_t> taken{0};
    std::atomic<bool> limitReached{false}, wasCancelled{false};
    const bool isTable = opts_.format == TextFormat::Table;
    runLanes(
        lanes_.size(),
        [&](size_t i) {
          const Filter& match = lanes_[i].match;
          DumpReader reader(nsFd, lanes_[i], "export");
          std::string text;
          TableRows rows;
          double lines = 0;
          // Writes what this lane has formatted; laneDone: it has no more (the table's held head may be due).
          auto flush = [&](bool laneDone) {
            if (isTable) {
              if (rows.empty() && !laneDone) return true;
              size_t laidOut = 0;
              if (!sink.write(text, [&](std::string& out) { laidOut = table.write(rows, laneDone, out); })) return false;
              written[i] += static_cast<double>(laidOut);
              return true;
            }
            if (!sink.write(text)) return false;
            written[i] += lines;
            lines = 0;
            return true;
          };
          bool stop = false;
          bool more = true;
          while (more && !stop) {
            more = reader.next([&](const Entry& e) {
              if (stop) return;
              const Ages ages = estimateAges(e, timeouts, nowNs);
              if (!match.matches(e, ages)) return;
              if (opts_.limit >= 0 && taken.fetch_add(1) >= static_cast<int64_t>(opts_.limit)) {
                limitReached.store(true);
                stop = true;
                return;
              }
              switch (opts_.format) {
                case TextFormat::Ndjson: appendNdjson(text, e, ages); break;
                case TextFormat::Conntrack: appendConntrackLine(text, e, nowNs); break;
                case TextFormat::Table: rows.add(e, ages); break;
                case TextFormat::Records: break;  // not a line format: refused in startExport
              }
              lines++;
              if (text.size() + rows.text.size() >= kWriteBytes && !flush(false)) stop = true;
            });
            // The lines of each dump buffer go out before the next is read: the export is paced
            // by its reader, and a cancel ends it after the lines in flight.
            if (!stop && !flush(false)) stop = true;
            if (sink.failed() || limitReached.load()) stop = true;
            if (cancelled()) {
              wasCancelled.store(true);
              stop = true;
            }
          }
          if (!sink.failed()) flush(true);
        },
        [&](size_t) { abort_.store(true); });
    for (double w : written) written_ += w;
    limitReached_ = limitReached.load();
    cancelled_ = wasCancelled.load();
    writeErrno_ = sink.error();
  }

  Napi::Value Resolve(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("written", written_);
    o.Set("cancelled", cancelled_);
    o.Set("limitReached", limitReached_);
    if (writeErrno_ != 0) {
      o.Set("writeErrno", -writeErrno_);
      o.Set("writeCode", errnoCode(writeErrno_));
    }
    return o;
  }

 private:
  bool cancelled() const { return abort_.load() || cancel_.requested(); }

  NamespacePtr ns_;
  std::vector<Lane> lanes_;
  ExportOptions opts_;
  CancelFlag cancel_;
  std::atomic<bool> abort_{false};  // a lane failed: the others stop after their current read
  double written_ = 0;
  bool cancelled_ = false, limitReached_ = false;
  int writeErrno_ = 0;
};

}  // namespace

Napi::Value startExport(const Napi::CallbackInfo& info, NamespacePtr ns) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsObject()) throw Napi::TypeError::New(env, "ctpurge: export(lanes, options)");
  std::vector<Lane> lanes = lanesFromJs(info[0]);
  Napi::Object o = info[1].As<Napi::Object>();
  ExportOptions opts;
  Napi::Value fd = ownGet(o, "fd");
  if (!fd.IsNumber() || fd.As<Napi::Number>().Int32Value() < 0) throw Napi::TypeError::New(env, "ctpurge: export fd must be a file descriptor");
  opts.fd = fd.As<Napi::Number>().Int32Value();
  opts.format = textFormatFromJs(ownGet(o, "format"), TextFormat::Ndjson, {TextFormat::Ndjson, TextFormat::Conntrack, TextFormat::Table}, "export");
  Napi::Value limit = ownGet(o, "limit");
  opts.limit = limit.IsNumber() ? limit.As<Napi::Number>().DoubleValue() : -1;
  return queueWorker<ExportWorker>(env, std::move(ns), std::move(lanes), opts, ownGet(o, "cancel"));
}

}  // namespace ctpurge
