// A consumer's own GroupNorm kernel judged by an installed gnv: a two-pass kernel in long double
// must PASS a generated case at offset 1e4, and a one-pass float kernel must FAIL it. Exit 0 when
// both verdicts are as expected.
#include <cmath>
#include <cstdio>
#include <string>

#include "gnv/check.h"
#include "gnv/stress.h"

namespace {

class Mine : public gnv::Impl {
 public:
  explicit Mine(bool onepass) : onepass_(onepass) {}
  std::string_view name() const override { return onepass_ ? "mine-onepass" : "mine"; }
  gnv::Capabilities capabilities() const override {
    gnv::Capabilities c;
    c.dtypes = {gnv::DType::f32};
    c.layouts = {gnv::Layout::nchw};
    c.backward = false;
    c.statistics = false;
    return c;
  }
  void forward(const gnv::ForwardArgs& a) const override {
    const gnv::Problem& p = a.p;
    const float* x = a.x.data<float>();
    float* y = a.y.data<float>();
    const int64_t m = p.group_size();
    for (int64_t ng = 0; ng < p.N * p.G; ++ng) {
      const float* xs = x + ng * m;
      long double mean = 0, var = 0;
      if (onepass_) {
        float s = 0, q = 0;
        for (int64_t i = 0; i < m; ++i) s += xs[i], q += xs[i] * xs[i];
        mean = s / m;
        var = std::fmax(q / m - static_cast<float>(mean * mean), 0.0f);
      } else {
        for (int64_t i = 0; i < m; ++i) mean += xs[i];
        mean /= m;
        for (int64_t i = 0; i < m; ++i) var += (xs[i] - mean) * (xs[i] - mean);
        var /= m;
      }
      for (int64_t i = 0; i < m; ++i) y[ng * m + i] = static_cast<float>((xs[i] - mean) / std::sqrt(var + p.eps));
    }
  }
  void backward(const gnv::BackwardArgs&) const override {}

 private:
  bool onepass_;
};

}  // namespace

int main() {
  gnv::Problem p;
  p.N = 2;
  p.C = 8;
  p.spatial = {5, 3};
  p.G = 4;
  const gnv::Case c = gnv::make_case(p, gnv::parse_stress("offset:1e4"), 1, false);
  const gnv::CheckResult good = gnv::check_case(Mine(false), c, false);
  const gnv::CheckResult bad = gnv::check_case(Mine(true), c, false);
  std::printf("mine: %s, mine-onepass: %s\n", gnv::verdict_label(good.verdict).c_str(),
              gnv::verdict_label(bad.verdict).c_str());
  return good.verdict == gnv::Verdict::pass && bad.verdict == gnv::Verdict::fail ? 0 : 1;
}
