#include "run_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <string>
#include <system_error>

#include "common.h"

namespace gnv::cli {

namespace fs = std::filesystem;

namespace {

constexpr const char* kOwned[] = {"report.json", "report.md", "junit.xml", "report.html", "compare.md", "cases",
                                  "runner", "plugins"};

// A temporary of write_file_atomic for one of gnv's files ("report.json.tmp.<pid>"), or "".
std::string owned_temp_prefix(const std::string& name) {
  for (const char* n : kOwned)
    if (const std::string p = std::string(n) + ".tmp."; name.rfind(p, 0) == 0) return p;
  return "";
}

// What gnv writes into OUT: never carried over from an old run (stale cases would pass for findings).
bool owned(const std::string& name) {
  for (const char* n : kOwned)
    if (name == n) return true;
  return !owned_temp_prefix(name).empty();
}

fs::path normalized(const fs::path& out) {
  fs::path p = fs::absolute(out).lexically_normal();
  if (!p.has_filename() && p.has_parent_path() && p != p.root_path()) p = p.parent_path();
  return p;
}

bool process_alive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

// The pid at the end of "PREFIX<pid>", or -1.
long pid_suffix(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size()) return -1;
  long pid = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || pid > 100000000) return -1;
    pid = pid * 10 + (name[i] - '0');
  }
  return pid;
}

// Hard links (copies where a link is refused) of src's tree into dst.
void link_tree(const fs::path& src, const fs::path& dst) {
  const fs::file_type t = fs::symlink_status(src).type();
  if (t == fs::file_type::directory) {
    fs::create_directories(dst);
    for (const fs::directory_entry& e : fs::directory_iterator(src)) link_tree(e.path(), dst / e.path().filename());
  } else if (t == fs::file_type::symlink) {
    fs::copy_symlink(src, dst);
  } else if (t == fs::file_type::regular) {
    std::error_code ec;
    fs::create_hard_link(src, dst, ec);
    if (ec) fs::copy_file(src, dst);
  }
}

}  // namespace

fs::path RunDir::staging_for(const fs::path& out) {
  const fs::path p = normalized(out);
  return p.parent_path() / fmt::format(".{}.gnv-new-{}", p.filename().string(), ::getpid());
}

RunDir::RunDir(const fs::path& out) : out_(normalized(out)), staging_(staging_for(out)) {
  std::error_code ec;
  if (out_ == out_.root_path()) throw UsageError(fmt::format("--out {}: not a folder gnv can replace", out.string()));
  // The swap replaces OUT's inode: a shell standing in it would be left in the deleted old folder.
  const fs::path cwd = fs::current_path(ec).lexically_normal();
  if (!ec) {
    const auto [o, c] = std::mismatch(out_.begin(), out_.end(), cwd.begin(), cwd.end());
    if (o == out_.end())
      throw UsageError(fmt::format("--out {}: is the current directory or holds it; name a folder below it "
                                   "(gnv replaces --out as a whole)", out.string()));
  }
  const fs::file_status st = fs::symlink_status(out_, ec);
  if (fs::exists(st) && !fs::is_directory(st))
    throw UsageError(fmt::format("--out {}: exists and is not a directory", out.string()));
  fs::create_directories(out_.parent_path(), ec);
  if (ec) throw UsageError(fmt::format("--out {}: cannot create {}: {}", out.string(), out_.parent_path().string(), ec.message()));
  // Leftovers of runs that were killed: their staging folders beside OUT, temporaries inside it.
  const std::string prefix = fmt::format(".{}.gnv-new-", out_.filename().string());
  for (const fs::directory_entry& e : fs::directory_iterator(out_.parent_path(), ec)) {
    const long pid = pid_suffix(e.path().filename().string(), prefix);
    if (pid > 0 && !process_alive(pid)) fs::remove_all(e.path(), ec);
  }
  if (fs::is_directory(st))
    for (const fs::directory_entry& e : fs::directory_iterator(out_, ec)) {
      const std::string name = e.path().filename().string();
      const std::string prefix_tmp = owned_temp_prefix(name);
      if (!prefix_tmp.empty() && !process_alive(pid_suffix(name, prefix_tmp))) fs::remove(e.path(), ec);
    }
  // The staging folder may exist already: `gnv validate` loads its plugins and runners (their logs
  // and batches go under it) before the sweep opens the folder.
  fs::create_directories(staging_, ec);
  if (ec) throw UsageError(fmt::format("--out {}: cannot create {}: {}", out.string(), staging_.string(), ec.message()));
}

fs::path RunDir::place(const fs::path& path) const {
  const fs::path p = fs::absolute(path).lexically_normal();
  const auto [o, q] = std::mismatch(out_.begin(), out_.end(), p.begin(), p.end());
  if (o != out_.end()) return path;
  fs::path inside = staging_;
  for (auto it = q; it != p.end(); ++it) inside /= *it;
  fs::create_directories(inside.parent_path());
  return inside;
}

RunDir::~RunDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

void RunDir::commit() {
  std::error_code ec;
  if (fs::is_directory(fs::symlink_status(out_, ec))) {
    for (const fs::directory_entry& e : fs::directory_iterator(out_)) {
      const std::string name = e.path().filename().string();
      if (!owned(name) && !fs::exists(fs::symlink_status(staging_ / name, ec))) link_tree(e.path(), staging_ / name);
    }
    if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, out_.c_str(), RENAME_EXCHANGE) != 0) {
      // A file system without RENAME_EXCHANGE: two renames, with a moment where OUT is absent
      // (never a mix).
      const fs::path old = staging_.string() + ".old";
      fs::rename(out_, old);
      fs::rename(staging_, out_);
      fs::remove_all(old, ec);
    } else {
      fs::remove_all(staging_, ec);  // the old set, now at the staging path
    }
  } else {
    fs::rename(staging_, out_);
  }
  committed_ = true;
}

}  // namespace gnv::cli
