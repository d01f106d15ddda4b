{
  "targets": [
    {
      "target_name": "ctpurge",
      "sources": [
        "native/addon.cc",
        "native/sysError.cc",
        "native/netlinkSocket.cc",
        "native/ctMessage.cc",
        "native/ctRequest.cc",
        "native/dumpReader.cc",
        "native/filter.cc",
        "native/policyTimeouts.cc",
        "native/entryRecord.cc",
        "native/ndjson.cc",
        "native/conntrackLine.cc",
        "native/tableText.cc",
        "native/textParts.cc",
        "native/textFormat.cc",
        "native/promiseWorker.cc",
        "native/jsConvert.cc",
        "native/singleRequest.cc",
        "native/handle.cc",
        "native/dumpCursor.cc",
        "native/eventCursor.cc",
        "native/purgeLane.cc",
        "native/fileLock.cc",
        "native/purgeWorker.cc",
        "native/lineSink.cc",
        "native/exportWorker.cc",
        "native/tableSummary.cc",
        "native/talkerCounts.cc",
        "native/summaryWorker.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": [
        "-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter",
        "<!@(pkg-config --cflags libnetfilter_conntrack libmnl)",
        "<!@(node -p \"process.env.CTPURGE_SANITIZE ? '-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g' : ''\")"
      ],
      "ldflags": [
        "<!@(node -p \"process.env.CTPURGE_SANITIZE ? '-fsanitize=address,undefined' : ''\")",
        "<!@(node -p \"process.env.CTPURGE_STATIC_RUNTIME ? '-static-libstdc++ -static-libgcc' : ''\")"
      ],
      "libraries": ["<!@(pkg-config --libs libnetfilter_conntrack libmnl)"],
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ]
    }
  ]
}
