#include "gnv/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <sstream>
#include <system_error>

namespace gnv {

// Tensor bytes are native order and .npy descrs we write say '<': a big-endian host would need
// byte swapping in serialize_npy and to_tensor.
static_assert(std::endian::native == std::endian::little, "npy I/O assumes a little-endian host");

namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
// numpy's own limit (NPY_MAXDIMS in numpy 1.x); a header asking for more is not a real array.
constexpr size_t kMaxDims = 32;

[[noreturn]] void fail(const std::string& what, const std::string& msg) {
  throw NpyError(fmt::format("{}: {}", what, msg));
}

// Header bytes come from untrusted files: quote them printable and short in messages.
std::string quote(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\')
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  if (s.size() > kMax) out += "...";
  return out + "'";
}

uint32_t read_le(std::string_view b, size_t pos, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[pos + i]);
  return v;
}

// A recursive-descent parser for exactly the Python literal numpy writes: a flat dict with
// string keys whose values are a string, a bool or a tuple of ints. Anything else is rejected, so
// no input can make it recurse or allocate beyond the header's own size.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& what) : s_(text), what_(what) {}

  NpyArray parse() {
    NpyArray a;
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    expect('{', "the header must be a dict starting with '{'");
    skip_ws();
    while (!at('}')) {
      const std::string key = parse_string("dict key");
      skip_ws();
      expect(':', fmt::format("expected ':' after key {}", quote(key)));
      skip_ws();
      if (key == "descr") {
        take_once(have_descr, key);
        if (at('[')) fail(what_, "structured dtypes (a list descr) are not supported");
        a.descr = parse_string("descr value");
      } else if (key == "fortran_order") {
        take_once(have_fortran, key);
        a.fortran_order = parse_bool(key);
      } else if (key == "shape") {
        take_once(have_shape, key);
        a.shape = parse_shape();
      } else {
        fail(what_, fmt::format("unexpected header key {} (only 'descr', 'fortran_order' and "
                                "'shape' are allowed)", quote(key)));
      }
      skip_ws();
      if (at(',')) {
        ++pos_;
        skip_ws();
      } else if (!at('}')) {
        fail(what_, fmt::format("expected ',' or '}}' in header dict at offset {}", pos_));
      }
    }
    ++pos_;
    skip_ws();
    if (pos_ != s_.size())
      fail(what_, fmt::format("unexpected bytes after the header dict: {}", quote(s_.substr(pos_))));
    if (!have_descr) fail(what_, "header is missing the key 'descr'");
    if (!have_fortran) fail(what_, "header is missing the key 'fortran_order'");
    if (!have_shape) fail(what_, "header is missing the key 'shape'");
    return a;
  }

 private:
  bool at(char c) const { return pos_ < s_.size() && s_[pos_] == c; }

  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' ||
                                s_[pos_] == '\r'))
      ++pos_;
  }

  void expect(char c, const std::string& msg) {
    if (!at(c)) fail(what_, fmt::format("{} (offset {} of the header)", msg, pos_));
    ++pos_;
  }

  void take_once(bool& seen, const std::string& key) {
    if (seen) fail(what_, fmt::format("header key {} appears twice", quote(key)));
    seen = true;
  }

  std::string parse_string(const char* role) {
    if (!at('\'') && !at('"'))
      fail(what_, fmt::format("expected a quoted string as {} at offset {} of the header", role, pos_));
    const char q = s_[pos_++];
    const size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\n') break;  // a string cannot span lines: reported as unterminated
      if (s_[pos_] == '\\')
        fail(what_, fmt::format("escape sequences in header strings are not supported ({})", role));
      ++pos_;
    }
    if (!at(q)) fail(what_, fmt::format("unterminated string in header ({})", role));
    return std::string(s_.substr(start, pos_++ - start));
  }

  bool parse_bool(const std::string& key) {
    for (auto [word, value] : {std::pair{std::string_view("True"), true}, {"False", false}}) {
      if (s_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return value;
      }
    }
    fail(what_, fmt::format("header value of {} must be True or False, got {}", quote(key),
                            quote(s_.substr(pos_, 10))));
  }

  int64_t parse_dim() {
    const bool negative = at('-');
    if (negative) ++pos_;
    const size_t start = pos_;
    int64_t v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s_[pos_] - '0', &v))
        fail(what_, "a shape dimension does not fit in int64");
      ++pos_;
    }
    if (pos_ == start)
      fail(what_, fmt::format("expected an integer in shape at offset {} of the header", pos_));
    if (pos_ - start > 1 && s_[start] == '0')
      fail(what_, "shape dimensions must not have leading zeros");
    if (at('L')) ++pos_;  // Python 2 longs, as numpy < 1.x on Python 2 wrote them
    if (negative && v != 0) fail(what_, fmt::format("negative dimension -{} in shape", v));
    return v;
  }

  std::vector<int64_t> parse_shape() {
    expect('(', "header value of 'shape' must be a tuple");
    std::vector<int64_t> shape;
    skip_ws();
    bool trailing_comma = false;
    while (!at(')')) {
      if (shape.size() == kMaxDims) fail(what_, fmt::format("shape has more than {} dimensions", kMaxDims));
      shape.push_back(parse_dim());
      skip_ws();
      trailing_comma = at(',');
      if (trailing_comma) {
        ++pos_;
        skip_ws();
      } else if (!at(')')) {
        fail(what_, fmt::format("expected ',' or ')' in shape at offset {} of the header", pos_));
      }
    }
    ++pos_;
    // Python reads "(3)" as the integer 3, not a tuple; numpy rejects it, so do we.
    if (shape.size() == 1 && !trailing_comma)
      fail(what_, "shape '(n)' is not a tuple; a one-dimensional shape is written '(n,)'");
    return shape;
  }

  std::string_view s_;
  const std::string& what_;
  size_t pos_ = 0;
};

struct DescrInfo {
  std::string_view descr;
  DType dtype;
};
constexpr DescrInfo kDescrs[] = {{"<f8", DType::f64}, {"<f4", DType::f32}, {"<f2", DType::f16},
                                 {"<u2", DType::bf16}};

std::string_view descr_of(DType d) {
  for (const auto& di : kDescrs)
    if (di.dtype == d) return di.descr;
  throw std::logic_error("no npy descr for dtype");
}

int64_t itemsize_of(const std::string& descr, const std::string& what) {
  for (const auto& di : kDescrs)
    if (di.descr == descr) return info(di.dtype).bytes;
  if (!descr.empty() && descr[0] == '>')
    fail(what, fmt::format("big-endian dtype {} is not supported (store it little-endian, e.g. '<{}')",
                           quote(descr), descr.substr(1)));
  fail(what, fmt::format("unsupported dtype {} (expected '<f8', '<f4', '<f2' or '<u2')", quote(descr)));
}

int64_t checked_byte_count(const std::vector<int64_t>& shape, int64_t itemsize,
                           const std::string& what) {
  // Checked in order, zeros included, because Tensor's constructor checks the same way.
  int64_t n = 1;
  for (int64_t e : shape)
    if (__builtin_mul_overflow(n, e, &n))
      fail(what, fmt::format("shape ({}) has more elements than int64 can count", fmt::join(shape, ", ")));
  int64_t bytes;
  if (__builtin_mul_overflow(n, int64_t{8}, &bytes))
    fail(what, fmt::format("shape ({}) has a byte size that overflows int64", fmt::join(shape, ", ")));
  return n * itemsize;
}

std::string shape_literal(const std::vector<int64_t>& shape) {
  if (shape.size() == 1) return fmt::format("({},)", shape[0]);
  return fmt::format("({})", fmt::join(shape, ", "));
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

void write_all(int fd, std::string_view content, const std::string& path) {
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw NpyError(fmt::format("{}: write failed: {}", path, errno_text(errno)));
    content.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

NpyArray parse_npy(std::string_view bytes, const std::string& what) {
  if (bytes.size() < kMagic.size() || bytes.substr(0, kMagic.size()) != kMagic)
    fail(what, "not a .npy file (bad magic; expected \\x93NUMPY)");
  if (bytes.size() < 8) fail(what, "truncated before the format version");
  const int major = static_cast<unsigned char>(bytes[6]), minor = static_cast<unsigned char>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0)
    fail(what, fmt::format("unsupported .npy format version {}.{} (expected 1.0, 2.0 or 3.0)", major, minor));
  const size_t len_bytes = major == 1 ? 2 : 4;
  const size_t preamble = 8 + len_bytes;
  if (bytes.size() < preamble) fail(what, "truncated inside the header length field");
  const uint64_t header_len = read_le(bytes, 8, static_cast<int>(len_bytes));
  if (header_len > bytes.size() - preamble)
    fail(what, fmt::format("header length {} runs past the end of the file ({} bytes)", header_len,
                           bytes.size()));

  NpyArray a = HeaderParser(bytes.substr(preamble, header_len), what).parse();
  const int64_t expected = checked_byte_count(a.shape, itemsize_of(a.descr, what), what);
  const std::string_view data = bytes.substr(preamble + header_len);
  if (static_cast<uint64_t>(expected) != data.size())
    fail(what, fmt::format("data is {} bytes but shape {} with dtype {} needs {} bytes ({})",
                           data.size(), shape_literal(a.shape), quote(a.descr), expected,
                           data.size() < static_cast<uint64_t>(expected) ? "truncated" : "trailing bytes"));
  a.data.resize(data.size());
  if (!data.empty()) std::memcpy(a.data.data(), data.data(), data.size());
  return a;
}

std::uintmax_t npy_max_bytes(int64_t elements, DType dtype) {
  return kMaxNpyHeader + static_cast<std::uintmax_t>(std::max<int64_t>(elements, 0)) * info(dtype).bytes;
}

NpyArray read_npy(const std::filesystem::path& path, std::uintmax_t max_bytes) {
  const std::string bytes = read_small_file_or<NpyError>(path, max_bytes);
  return parse_npy(bytes, path.string());
}

Tensor to_tensor(const NpyArray& a, DType want, const std::string& what) {
  if (a.fortran_order)
    fail(what, "fortran_order=True is not supported (save the array in C order)");
  const std::string_view expected = descr_of(want);
  if (a.descr != expected)
    fail(what, fmt::format("dtype {} does not match case dtype {} (expected '{}')", quote(a.descr),
                           name(want), expected));
  const int64_t nbytes = checked_byte_count(a.shape, info(want).bytes, what);
  if (static_cast<uint64_t>(nbytes) != a.data.size())
    fail(what, fmt::format("data is {} bytes but shape {} needs {}", a.data.size(),
                           shape_literal(a.shape), nbytes));
  Tensor t(want, a.shape);
  if (nbytes > 0) std::memcpy(t.raw(), a.data.data(), a.data.size());
  return t;
}

std::string serialize_npy(const Tensor& t) {
  if (t.empty()) throw NpyError("cannot serialize an empty (default-constructed) tensor");
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
                                 descr_of(t.dtype()), shape_literal(t.shape()));
  // numpy pads the header with spaces so the data starts 64-byte aligned, ending in '\n'.
  auto padded = [&](size_t preamble) {
    const size_t unpadded = preamble + dict.size() + 1;
    return dict + std::string((64 - unpadded % 64) % 64, ' ') + '\n';
  };
  std::string header = padded(10);
  std::string out(kMagic);
  if (header.size() <= 0xFFFF) {
    out += '\x01';
    out += '\x00';
    out += static_cast<char>(header.size() & 0xFF);
    out += static_cast<char>(header.size() >> 8);
  } else {
    header = padded(12);
    out += '\x02';
    out += '\x00';
    for (int i = 0; i < 4; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  }
  out += header;
  out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

void write_npy(const std::filesystem::path& path, const Tensor& t) {
  write_file_atomic(path, serialize_npy(t));
}

// Readers (a replaying CI job, a second sweep shard) must never see a half-written file: write a
// sibling temporary, then rename over the target, which POSIX makes atomic on one filesystem.
// No fsync: this guards against a killed writer, not against power loss.
void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  const std::string tmp = fmt::format("{}.tmp.{}", path.string(), ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw NpyError(fmt::format("{}: cannot write: {}", path.string(), errno_text(errno)));
  try {
    write_all(fd, content, path.string());
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  // Linux releases the descriptor even when close fails (NFS reports write errors here), so it
  // is never closed twice.
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw NpyError(fmt::format("{}: cannot write: {}", path.string(), errno_text(err)));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    throw NpyError(fmt::format("{}: cannot replace: {}", path.string(), ec.message()));
  }
}

std::string read_small_file(const std::filesystem::path& path, std::uintmax_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec) throw std::invalid_argument(fmt::format("{}: cannot open: {}", path.string(), ec.message()));
  if (!fs::is_regular_file(st))
    throw std::invalid_argument(fmt::format("{}: not a regular file ({})", path.string(),
                                            fs::is_directory(st) ? "a directory"
                                            : fs::is_fifo(st)    ? "a FIFO"
                                            : fs::is_character_file(st) || fs::is_block_file(st) ? "a device"
                                                                                                 : "not a plain file"));
  if (const std::uintmax_t size = fs::file_size(path, ec); !ec && size > max_bytes)
    throw std::invalid_argument(
        fmt::format("{}: {} bytes, more than the {} this file may hold", path.string(), size, max_bytes));
  // O_NONBLOCK, and the type checked again on the descriptor: a file swapped for a FIFO between the
  // stat above and this open must not block.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw std::invalid_argument(fmt::format("{}: cannot open: {}", path.string(), errno_text(errno)));
  struct stat fst {};
  if (::fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode)) {
    ::close(fd);
    throw std::invalid_argument(fmt::format("{}: not a regular file", path.string()));
  }
  // Read at most one byte past the limit: the file may grow between the stat and the read.
  std::string out;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw std::invalid_argument(fmt::format("{}: cannot read: {}", path.string(), errno_text(err)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      throw std::invalid_argument(
          fmt::format("{}: more than the {} bytes this file may hold", path.string(), max_bytes));
    }
  }
  ::close(fd);
  return out;
}

}  // namespace gnv
