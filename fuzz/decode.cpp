#include "fuzz/decode.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fstream>
#include <fuzzer/FuzzedDataProvider.h>
#include <system_error>

#include "gnv/npy.h"
#include "gnv/report.h"

namespace gnv::fuzz {

namespace fs = std::filesystem;

namespace {

// ---- differential decoding --------------------------------------------------------------------

uint64_t raw_bits(FuzzedDataProvider& in, DType d) {
  switch (info(d).bytes) {
    case 8: return in.ConsumeIntegral<uint64_t>();
    case 4: return in.ConsumeIntegral<uint32_t>();
    default: return in.ConsumeIntegral<uint16_t>();
  }
}

// The values where kernels and the oracle take their special paths: signed zeros, NaN (quiet,
// negative, signalling), infinities, the extremes, the subnormal edge, neighbours of 1, and the
// magnitudes whose square overflows or underflows.
uint64_t special_bits(DType d, unsigned k) {
  const DTypeInfo& in = info(d);
  const double sq_over = std::ldexp(1.0, (in.max_exp + 2) / 2);  // its square exceeds max
  const double sq_under = std::ldexp(1.0, in.min_exp / 2 - 1);   // its square is subnormal
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  switch (k % 24) {
    case 0: return round_for_data(d, 0.0);
    case 1: return round_for_data(d, -0.0);
    case 2: return round_for_data(d, 1.0);
    case 3: return round_for_data(d, -1.0);
    case 4: return round_for_data(d, inf);
    case 5: return round_for_data(d, -inf);
    case 6: return round_for_data(d, nan);
    case 7: return round_for_data(d, -nan);
    case 8: {  // a signalling NaN: exponent all ones, quiet bit clear, payload 1
      const int nbits = in.bytes * 8, mant = in.precision - 1;
      const uint64_t exp_mask = ((uint64_t{1} << (nbits - 1)) - 1) & ~((uint64_t{1} << mant) - 1);
      return exp_mask | 1;
    }
    case 9: return round_for_data(d, in.max_finite);
    case 10: return round_for_data(d, -in.max_finite);
    case 11: return round_for_data(d, in.min_normal);
    case 12: return round_for_data(d, -in.min_normal);
    case 13: return round_for_data(d, in.min_subnormal);
    case 14: return round_for_data(d, -in.min_subnormal);
    case 15: return round_for_data(d, 0.5);
    case 16: return round_for_data(d, 2.0);
    case 17: return round_for_data(d, 1.0 + 2 * in.unit_roundoff);
    case 18: return round_for_data(d, 1.0 - in.unit_roundoff);
    case 19: return round_for_data(d, sq_over);
    case 20: return round_for_data(d, -sq_over);
    case 21: return round_for_data(d, sq_under);
    case 22: return round_for_data(d, std::min(1e4, in.max_finite));
    default: return round_for_data(d, -std::min(1e4, in.max_finite) / 3);
  }
}

Tensor decode_tensor(FuzzedDataProvider& in, DType d, std::vector<int64_t> shape) {
  const DTypeInfo& inf = info(d);
  Tensor t(d, std::move(shape));
  const double base = bits_to_double(d, raw_bits(in, d));
  const int step_exp =
      in.ConsumeIntegralInRange<int>(inf.min_exp - inf.precision + 1, inf.max_exp);
  const double step = std::ldexp(1.0, step_exp);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const unsigned tag = in.ConsumeIntegral<uint8_t>();
    if (tag < 64)
      t.set_bits(i, round_for_data(d, base + (static_cast<double>(tag) - 32) * step));
    else if (tag < 128)
      t.set_bits(i, special_bits(d, tag - 64));
    else
      t.set_bits(i, raw_bits(in, d));
  }
  return t;
}

double decode_eps(FuzzedDataProvider& in, DType d) {
  double eps = 1e-5;
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: eps = 1e-5; break;
    case 1: eps = 0; break;
    case 2: eps = 1e-3; break;
    case 3: eps = 1; break;
    case 4: eps = 1e-12; break;
    case 5: eps = 0.1; break;
    case 6: eps = 0x1p-20; break;
    // Raw bits in the accumulation type, where kernels add eps to the variance: a double eps
    // that acc_t cannot hold (1e-50 or 1e50 for an f32 kernel) rounds to 0 or Inf there.
    default: eps = bits_to_double(acc_dtype(d), raw_bits(in, acc_dtype(d))); break;
  }
  eps = std::fabs(eps);
  return std::isfinite(eps) ? eps : 1e-5;
}

// ---- reporting --------------------------------------------------------------------------------

int digits(DType d) { return d == DType::f64 ? 17 : 9; }

std::string tensor_values(const Tensor& t) {
  std::string s;
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (i) s += ' ';
    s += fmt::format("{:.{}g}", t.get(i), digits(t.dtype()));
    if (std::isnan(t.get(i))) s += fmt::format("(0x{:x})", t.bits(i));
  }
  return s;
}

std::string metrics_line(const Problem& p, const OutputMetrics& m) {
  std::string line = fmt::format("    {:<6} {:<9} max_cond_err={:.3g} budget={:.3g} max_ulp={:.3g} "
                                 "max_u_err={:.3g} normwise={:.2e}",
                                 m.name, name(m.verdict), m.max_cond_err, m.budget, m.max_ulp,
                                 m.max_u_err, m.normwise);
  if (m.ill_posed) line += fmt::format(" ill_posed={}", m.ill_posed);
  if (m.unwritten) line += fmt::format(" unwritten={}", m.unwritten);
  if (m.policy_violations) line += fmt::format(" policy_violations={}", m.policy_violations);
  if (m.worst_index >= 0)
    line += fmt::format("  worst {}: expected={:.{}g} actual={:.{}g}",
                        describe_index(p, m.name, m.worst_index), m.worst_expected,
                        digits(p.dtype), m.worst_actual, digits(p.dtype));
  return line;
}

// ---- case files -------------------------------------------------------------------------------

void write_bytes(const fs::path& file, std::string_view bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error(fmt::format("{}: cannot write", file.string()));
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

// Empty when the two cases are bitwise the same, else what differs.
std::string case_difference(const Case& a, const Case& b) {
  const Problem &p = a.problem, &q = b.problem;
  if (p.N != q.N || p.C != q.C || p.spatial != q.spatial || p.G != q.G) return "shape or G";
  if (std::memcmp(&p.eps, &q.eps, sizeof p.eps) != 0)
    return fmt::format("eps {} vs {}", p.eps, q.eps);
  if (p.affine != q.affine || p.dtype != q.dtype || p.layout != q.layout || p.affine_mode != q.affine_mode ||
      p.epilogue != q.epilogue)
    return "affine, dtype, layout or fused form";
  if (a.stress != b.stress || a.seed != b.seed) return "stress or seed";
  if (!same_tensor(a.x, b.x)) return "x";
  if (p.affine && (!same_tensor(a.gamma, b.gamma) || !same_tensor(a.beta, b.beta)))
    return "gamma or beta";
  if (a.dy.has_value() != b.dy.has_value() || (a.dy && !same_tensor(*a.dy, *b.dy))) return "dy";
  return {};
}

}  // namespace

Case decode_differential(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  Case c;
  Problem& p = c.problem;
  p.dtype = kAllDTypes[in.ConsumeIntegralInRange<int>(0, 3)];
  p.layout = in.ConsumeBool() ? Layout::nhwc : Layout::nchw;
  p.affine = in.ConsumeBool();
  const bool backward = in.ConsumeBool();
  p.N = in.ConsumeIntegralInRange<int64_t>(0, 2);
  p.G = in.ConsumeIntegralInRange<int64_t>(1, 4);
  p.C = p.G * in.ConsumeIntegralInRange<int64_t>(1, 4);
  const int rank = in.ConsumeIntegralInRange<int>(0, 3);
  // Each extent fits in what the earlier ones left, so N*C*S <= kMaxNumel.
  int64_t budget = kMaxNumel / std::max<int64_t>(p.N * p.C, 1);
  for (int r = 0; r < rank; ++r) {
    const int64_t e = in.ConsumeIntegralInRange<int64_t>(1, std::clamp<int64_t>(budget, 1, 8));
    p.spatial.push_back(e);
    budget = std::max<int64_t>(budget / e, 1);
  }
  p.eps = decode_eps(in, p.dtype);
  p.validate();
  c.x = decode_tensor(in, p.dtype, p.x_shape());
  if (p.affine) {
    c.gamma = decode_tensor(in, p.dtype, p.param_shape());
    c.beta = decode_tensor(in, p.dtype, p.param_shape());
  }
  if (backward) c.dy = decode_tensor(in, p.dtype, p.x_shape());
  // The fused forms (issue 21), read last so that the inputs from before them decode as they did:
  // bit 0 the SiLU epilogue, bit 1 per-sample parameters (rows 1..N-1 decoded after row 0).
  const unsigned fused = in.remaining_bytes() > 0 ? in.ConsumeIntegral<uint8_t>() : 0u;
  if (fused & 1u) p.epilogue = Epilogue::silu;
  if ((fused & 2u) && p.affine) {
    p.affine_mode = AffineMode::per_sample;
    for (Tensor* t : {&c.gamma, &c.beta}) {
      const Tensor rest = decode_tensor(in, p.dtype, {std::max<int64_t>(p.N - 1, 0), p.C});
      Tensor rows(p.dtype, p.param_shape());
      for (int64_t i = 0; i < rows.numel(); ++i) rows.set_bits(i, i < p.C ? t->bits(i) : rest.bits(i - p.C));
      *t = std::move(rows);
    }
  }
  c.stress = "fuzz";
  c.seed = 0;
  return c;
}

std::vector<const Impl*> differential_impls() {
  std::vector<const Impl*> out;
  for (const Impl* impl : Registry::instance().all()) {
    const Capabilities caps = impl->capabilities();
    if (caps.device == "cpu" && !caps.control && caps.forward) out.push_back(impl);
  }
  return out;
}

std::vector<ImplCheck> run_differential(const Case& c) {
  static const std::vector<const Impl*> impls = differential_impls();
  std::vector<ImplCheck> out;
  for (const Impl* impl : impls) {
    const Capabilities caps = impl->capabilities();
    if (!caps.lacks(c.problem).empty()) continue;
    out.push_back({impl, check_case(*impl, c, c.has_backward() && caps.backward)});
  }
  return out;
}

bool is_finding(const CheckResult& r) { return r.verdict != Verdict::pass; }

std::string describe_case(const Case& c) {
  const Problem& p = c.problem;
  std::string s = fmt::format("problem: {} (eps exactly {}) backward={}\n", p.describe(), p.eps,
                              c.has_backward() ? "yes" : "no");
  s += fmt::format("  x:     {}\n", tensor_values(c.x));
  if (p.affine) {
    s += fmt::format("  gamma: {}\n", tensor_values(c.gamma));
    s += fmt::format("  beta:  {}\n", tensor_values(c.beta));
  }
  if (c.dy) s += fmt::format("  dy:    {}\n", tensor_values(*c.dy));
  return s;
}

std::string describe_checks(const Case& c, const std::vector<ImplCheck>& checks, bool finding_only) {
  std::string s;
  for (const ImplCheck& ic : checks) {
    const CheckResult& r = ic.result;
    if (finding_only && !is_finding(r)) continue;
    s += fmt::format("  {}: {}{}\n", ic.impl->name(), name(r.verdict),
                     is_finding(r) ? "  <-- FINDING" : "");
    if (r.verdict == Verdict::error) s += fmt::format("    error: {}\n", r.error);
    for (const OutputMetrics& m : r.outputs) s += metrics_line(c.problem, m) + "\n";
    if (!r.outputs.empty())
      s += fmt::format("    kappa {:.3g} .. {:.3g}{}\n", r.kappa_min, r.kappa_max,
                       r.oracle_undecided ? fmt::format(", oracle undecided: {}", r.oracle_undecided)
                                          : std::string());
  }
  return s;
}

Outcome judge_differential(const Case& c, const std::vector<ImplCheck>& checks) {
  Outcome o;
  o.finding = std::any_of(checks.begin(), checks.end(),
                          [](const ImplCheck& ic) { return is_finding(ic.result); });
  o.report = describe_case(c) + describe_checks(c, checks, false);
  return o;
}

Outcome check_oracle_paths(const Case& c) {
  Outcome o;
  o.report = describe_case(c);
  // The fast path twice: with its default threshold for the binned sums (the decoded cases are
  // too small to reach it) and with every run binned.
  auto both = [&](const char* pass, auto run) {
    std::string errors[3];
    OracleResult r[3];
    const OracleOptions opts[3] = {{OraclePath::fast, 1}, {OraclePath::fast, 1, 1}, {OraclePath::reference, 1}};
    for (int i = 0; i < 3; ++i) {
      try {
        r[i] = run(opts[i]);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
    std::string diff;
    for (int i = 0; i < 2 && diff.empty(); ++i) {
      const char* which = i == 0 ? "fast" : "fast (all binned)";
      diff = errors[i] != errors[2] ? fmt::format("'{}', reference: '{}'", errors[i], errors[2])
             : errors[i].empty()    ? oracle_paths_mismatch(r[i], r[2])
                                    : std::string();
      if (!diff.empty()) diff = fmt::format("{}: {}", which, diff);
    }
    if (!diff.empty()) {
      o.finding = true;
      o.report += fmt::format("FINDING: the oracle paths differ in the {}: {}\n", pass, diff);
    } else {
      o.report += fmt::format("{}: the paths agree ({} fall-back(s){})\n", pass, r[0].fallbacks,
                              errors[0].empty() ? "" : ", both threw: " + errors[0]);
    }
  };
  both("forward", [&](const OracleOptions& p) { return oracle_forward(c, p); });
  if (c.has_backward()) both("backward", [&](const OracleOptions& p) { return oracle_backward(c, p); });
  return o;
}

Outcome check_npy(std::string_view bytes) {
  static constexpr std::pair<std::string_view, DType> kOurs[] = {
      {"<f8", DType::f64}, {"<f4", DType::f32}, {"<f2", DType::f16}, {"<u2", DType::bf16}};
  Outcome o;
  try {
    const NpyArray a = parse_npy(bytes, "input.npy");
    o.report = fmt::format("parsed: descr '{}' shape ({}) fortran_order={} {} data bytes\n",
                           a.descr, fmt::join(a.shape, ", "), a.fortran_order, a.data.size());
    for (auto [descr, d] : kOurs) {
      if (a.descr != descr || a.fortran_order) continue;
      const Tensor t = to_tensor(a, d, "input.npy");
      const NpyArray b = parse_npy(serialize_npy(t), "round trip");
      if (b.descr != a.descr || b.shape != a.shape || b.fortran_order || b.data != a.data) {
        o.finding = true;
        o.report += "FINDING: serialize_npy(to_tensor(parse_npy(input))) does not parse back to "
                    "the same array\n";
      } else {
        o.report += "round trip through to_tensor and serialize_npy: identical\n";
      }
    }
  } catch (const NpyError& e) {
    o.report = fmt::format("rejected (NpyError): {}\n", e.what());
  } catch (const std::exception& e) {
    o.finding = true;
    o.report = fmt::format("FINDING: parse_npy threw something other than NpyError: {}\n", e.what());
  }
  return o;
}

Outcome check_report(std::string_view bytes) {
  Outcome o;
  try {
    const report::Report r = report::parse_report(bytes);
    o.report = fmt::format("parsed: {} cells\n", r.cells.size());
    const std::string text = report::to_json_text(r);
    const std::string again = report::to_json_text(report::parse_report(text));
    if (again != text) {
      o.finding = true;
      o.report += "FINDING: to_json_text(parse_report(to_json_text(r))) differs from to_json_text(r)\n";
    }
    (void)report::render_markdown(r);
    (void)report::render_junit(r);
    (void)report::render_text(r);
    (void)report::to_json_text(report::baseline_of(r));
    o.report += "serialize, re-parse and render: consistent\n";
  } catch (const report::ReportError& e) {
    o.report = fmt::format("rejected (ReportError): {}\n", e.what());
  } catch (const std::exception& e) {
    o.finding = true;
    o.report += fmt::format("FINDING: a report function threw something other than ReportError: {}\n",
                            e.what());
  }
  return o;
}

Outcome check_grid(std::string_view bytes) {
  Outcome o;
  try {
    const report::Grid g = report::parse_grid(bytes, "fuzz.toml");
    // A grid of a few hundred bytes can describe 1e9 cases; count before enumerating them.
    double count = static_cast<double>(g.dtypes.size() * g.layouts.size());
    double per = 0;
    for (const report::Section& s : g.sections)
      for (const report::ShapeSpec& sh : s.shapes)
        per += static_cast<double>(sh.groups.size() * s.stresses.size() * s.seeds.size());
    count *= per;
    size_t cases = 0;
    if (count <= 1e5) cases = report::expand_cases(g).size();
    report::Report r;
    r.grid = g;
    r.grid.impls = {"welford"};
    const report::Report back = report::parse_report(report::to_json_text(r));
    if (std::string why = report::grid_mismatch(r.grid, r.shard, back.grid, back.shard); !why.empty()) {
      o.finding = true;
      o.report += fmt::format("FINDING: the grid does not survive report.json: {}\n", why);
    }
    o.report += fmt::format("grid parsed: {} sections, {:.0f} cases ({} enumerated)\n", g.sections.size(), count, cases);
  } catch (const report::GridError& e) {
    o.report += fmt::format("grid rejected (GridError): {}\n", e.what());
  } catch (const std::exception& e) {
    o.finding = true;
    o.report += fmt::format("FINDING: a grid function threw something other than GridError: {}\n", e.what());
  }
  try {
    const std::vector<report::Waiver> w = report::parse_waivers(bytes, "fuzz.toml");
    o.report += fmt::format("waivers parsed: {}\n", w.size());
  } catch (const report::GridError& e) {
    o.report += fmt::format("waivers rejected (GridError): {}\n", e.what());
  } catch (const std::exception& e) {
    o.finding = true;
    o.report += fmt::format("FINDING: parse_waivers threw something other than GridError: {}\n", e.what());
  }
  return o;
}

CaseFiles split_case_files(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  CaseFiles f;
  const unsigned flags = in.ConsumeIntegral<uint8_t>();
  f.json = in.ConsumeRandomLengthString(size);
  f.x = in.ConsumeRandomLengthString(size);
  if (flags & 1) f.gamma = in.ConsumeRandomLengthString(size);
  if (flags & 2) f.beta = in.ConsumeRandomLengthString(size);
  if (flags & 4) f.dy = in.ConsumeRemainingBytesAsString();
  return f;
}

void write_case_files(const CaseFiles& f, const fs::path& dir) {
  fs::create_directories(dir);
  write_bytes(dir / "case.json", f.json);
  write_bytes(dir / "x.npy", f.x);
  for (auto [file, content] : {std::pair{"gamma.npy", &f.gamma}, {"beta.npy", &f.beta}, {"dy.npy", &f.dy}}) {
    if (*content)
      write_bytes(dir / file, **content);
    else
      fs::remove(dir / file);
  }
}

Outcome check_case_dir(const fs::path& dir) {
  Outcome o;
  try {
    const Case c = load_case(dir);
    o.report = fmt::format("loaded: {} backward={}\n", c.problem.describe(), c.has_backward());
    // What loads must save and reload unchanged: the case directory is how findings travel.
    const fs::path again = scratch_dir() / "round-trip";
    save_case(c, again);
    const std::string diff = case_difference(c, load_case(again));
    if (!diff.empty()) {
      o.finding = true;
      o.report += fmt::format("FINDING: save_case + load_case changes the case ({})\n", diff);
    } else {
      o.report += "round trip through save_case and load_case: identical\n";
    }
  } catch (const CaseError& e) {
    o.report = fmt::format("rejected (CaseError): {}\n", e.what());
  } catch (const InvalidProblem& e) {
    o.report = fmt::format("rejected (InvalidProblem): {}\n", e.what());
  } catch (const NpyError& e) {
    o.report = fmt::format("rejected (NpyError): {}\n", e.what());
  } catch (const std::exception& e) {
    o.finding = true;
    o.report = fmt::format("FINDING: load_case threw something other than CaseError, InvalidProblem "
                           "or NpyError: {}\n", e.what());
  }
  return o;
}

const fs::path& scratch_dir() {
  // Heap-allocated and never freed, so the atexit cleanup can still read it after static
  // destructors have run.
  static const fs::path* dir = [] {
    auto* d = new fs::path(fs::temp_directory_path() / fmt::format("gnv-fuzz-{}", ::getpid()));
    fs::create_directories(*d);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(scratch_dir(), ec);
    });
    return d;
  }();
  return *dir;
}

int conclude(const Outcome& o, std::string_view target) {
  if (!o.finding) return 0;
  std::fprintf(stderr,
               "\n==== gnv fuzz target '%.*s': FINDING ====\n%s"
               "reproduce: gnv replay <this input> --target %.*s [--save-case DIR]\n",
               static_cast<int>(target.size()), target.data(), o.report.c_str(),
               static_cast<int>(target.size()), target.data());
  std::fflush(stderr);
  std::abort();
}

}  // namespace gnv::fuzz
