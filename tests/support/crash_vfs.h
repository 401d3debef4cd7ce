// A SQLite VFS for tests that simulates a power cut: writes since a file's last xSync are lost.
//
// It wraps the default VFS and writes through, but remembers, per open file (shared by every
// handle on it, as the kernel's page cache is), the bytes each write or truncate replaced since
// the file's last successful xSync through any handle. crash() puts every open file
// back to its state at its last sync, and from then on every write, sync, truncate and delete is
// silently dropped (the "machine" is off), until reset(). A store opened on this VFS, crashed,
// closed and reopened on the default VFS shows exactly what a power cut would have left on disk.
// Safe to use from several threads (the store checkpoints on a thread of its own).
#pragma once

namespace ferry::test::crash_vfs {

inline constexpr const char* name = "ferry-crash";

// Registers the VFS under `name` (not as the default); safe to call more than once.
void install();

// Rolls every open file back to its last sync and drops all I/O that follows.
void crash();

// Ends the crash: I/O goes through again (for files opened from now on).
void reset();

}  // namespace ferry::test::crash_vfs
