// app/sqlite_store: the demo's store (app/store.h) in a SQLite file, shared by the edge-app
// processes of one machine.
//
// The file is opened in WAL mode (readers never wait for the writer) with synchronous=NORMAL (a
// commit is not flushed to disk until a checkpoint: a power cut may lose the last moments, a
// crashed process loses nothing), and the tables are made when missing. A writer that finds
// the file locked tries again after 20 us, then twice as long each time up to 2 ms, until
// busy_timeout has passed (SQLite's own handler would sleep whole milliseconds from the first
// retry, far longer than the other writer's transaction), and every write begins
// IMMEDIATE so two writers never deadlock on an upgrade from a read lock. Statements are prepared
// once and reused.
//
// Ownership: the store owns its connection and statements; one thread uses it.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "app/store.h"

namespace edge::app {

// `path` is a file name, or ":memory:" for a store private to this process. Null with `error`
// when the file cannot be opened or its tables made.
std::unique_ptr<Store> open_sqlite_store(const std::string& path, std::chrono::milliseconds busy_timeout,
                                         std::string& error);

}  // namespace edge::app
