#pragma once
// The output folder of `gnv sweep`, `gnv validate` and `gnv merge`, written as one set (README
// "Report directory"): the run writes into a staging folder beside OUT, and commit() swaps it in
// with one atomic renameat2(RENAME_EXCHANGE). A reader, or a run killed at any moment, sees the old
// complete set or the new one, never a mix, and the cases a report names exist.
#include <filesystem>

namespace gnv::cli {

class RunDir {
 public:
  // Refuses an OUT that exists and is not a directory (UsageError); removes staging folders and
  // temporary files left by runs that died (their process is gone); creates the staging folder.
  explicit RunDir(const std::filesystem::path& out);
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;
  ~RunDir();  // not committed: the staging folder is removed, OUT is untouched

  const std::filesystem::path& out() const { return out_; }
  const std::filesystem::path& staging() const { return staging_; }
  // Entries of the old OUT that gnv does not own (a user's notes, a --write-baseline file placed
  // there) are hard-linked into the staging folder first, so nothing is lost; then the swap.
  void commit();

  // Where to write a file the user named (--write-baseline): inside OUT, its place in the staging
  // folder (so it is part of the set); elsewhere, the path itself.
  std::filesystem::path place(const std::filesystem::path& path) const;

  // Where this process stages OUT (the external runners' batches go under it, before the run).
  static std::filesystem::path staging_for(const std::filesystem::path& out);

 private:
  std::filesystem::path out_, staging_;
  bool committed_ = false;
};

}  // namespace gnv::cli
