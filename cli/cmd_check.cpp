// `gnv check`: one case (generated from options, or replayed from a case directory) against one
// implementation or all of them, with the numbers that explain the verdict and the command that
// reproduces it.
#include <cstdio>
#include <fmt/format.h>
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace gnv::cli {

namespace {

struct CheckOptions {
  std::string impl;
  std::string case_dir;
  std::string save_case;
  bool backward = false;
  std::string budget = "pairwise";
  double max_memory = 0;
  ProblemSpec spec;
  ExternalOptions ext;
};

// The impls to run: one named impl must support the problem (else exit 2, since asking for it
// is a usage error); `all` quietly keeps those that do.
std::vector<const Impl*> impls_for(const std::string& impl_name, const Problem& p, bool backward) {
  if (impl_name != "all") {
    const Impl& impl = Registry::instance().get(impl_name);
    if (std::string why = unsupported_reason(impl, p, backward); !why.empty()) throw UsageError(why);
    return {&impl};
  }
  std::vector<const Impl*> out;
  for (const Impl* impl : select_impls({}))
    if (unsupported_reason(*impl, p, backward).empty()) out.push_back(impl);
  if (out.empty())
    throw UsageError(fmt::format("no implementation supports dtype {} layout {}{}", name(p.dtype),
                                 name(p.layout), backward ? " with a backward pass" : ""));
  return out;
}

// Prints one impl's check and returns whether it passed.
bool check_one(const Impl& impl, const Case& c, bool backward, BudgetProfile budget, const std::string& reproduce) {
  const CheckResult r = check_case(impl, c, backward, budget);
  print_check(stdout, std::string(impl.name()), impl.capabilities().control, c, backward, r, reproduce);
  return r.verdict == Verdict::pass;
}

int run_check(CheckOptions o) {
  const std::string load = use_external(o.ext, o.impl);  // how the reproducer loads an external impl again
  if (o.impl.empty()) throw UsageError("--impl is required (a name from `gnv list`, or all)");
  Case c;
  bool backward = o.backward;
  std::string stress;
  uint64_t seed = 0;
  if (!o.case_dir.empty()) {
    c = load_case_reporting_file(o.case_dir);
    // After loading (its tensors are bounded by their files) and before the oracle, which is the cost.
    require_memory(c.problem, c.has_backward(), 1, o.max_memory);
    if (o.backward && !c.has_backward())
      throw UsageError(fmt::format("--backward: case directory '{}' has no dy.npy", o.case_dir));
    // A case carries its own intent: dy.npy present means the backward pass is asked for.
    backward = c.has_backward();
    stress = c.stress;
    seed = c.seed;
  } else {
    const Problem p = build_problem(o.spec);
    const Stress s = parse_stress(o.spec.stress);
    // Resolve impls before generating, so a usage error costs nothing and writes nothing.
    (void)impls_for(o.impl, p, backward);
    require_memory(p, backward, 1, o.max_memory);
    c = make_case(p, s, o.spec.seed, backward);
    stress = s.name();
    seed = o.spec.seed;
    if (!o.save_case.empty()) {
      save_case(c, o.save_case);
      fmt::print("saved case to {}\n", o.save_case);
    }
  }
  bool all_passed = true;
  bool first = true;
  for (const Impl* impl : impls_for(o.impl, c.problem, backward)) {
    if (!first) fmt::print("\n");
    first = false;
    const BudgetProfile budget = parse_budget_profile(o.budget);
    const std::string repro = reproduce_with(
        o.case_dir.empty() ? reproduce_command(std::string(impl->name()), c.problem, stress, seed, backward)
                           : reproduce_case_command(std::string(impl->name()), o.case_dir),
        impl->name() == o.impl ? load : "", budget);
    all_passed = check_one(*impl, c, backward, budget, repro) && all_passed;
  }
  return all_passed ? kExitPass : kExitFail;
}

}  // namespace

Command register_check(CLI::App& app) {
  auto o = std::make_shared<CheckOptions>();
  CLI::App* sub = app.add_subcommand(
      "check", "Check one case against an implementation (or all): generated from --shape/--groups/"
               "--stress/--seed, or replayed with --case DIR");
  sub->add_option("--impl", o->impl,
                  "Implementation name, or 'all' (see `gnv list`); required unless one --plugin/--runner is given");
  add_external_options(sub, o->ext);
  auto* case_opt = sub->add_option("--case", o->case_dir, "Replay a saved case directory");
  add_memory_option(sub, o->max_memory);
  add_budget_option(sub, o->budget, "the verdict is judged with")->capture_default_str();
  sub->add_flag("--backward", o->backward,
                "Also check the backward pass (with --case: requires dy.npy, which runs it anyway)");
  // The options that generate a case make no sense together with --case.
  std::vector<CLI::Option*> gen{
      sub->add_option("--dtype", o->spec.dtype, "f64, f32, f16, bf16")->capture_default_str(),
      sub->add_option("--layout", o->spec.layout, "nchw or nhwc")->capture_default_str(),
      sub->add_option("--shape", o->spec.shape, "N,C[,D][,H][,W]"),
      sub->add_option("--groups", o->spec.groups, "Number of groups G (C % G == 0)"),
      sub->add_option("--eps", o->spec.eps, "Epsilon added to the variance")->capture_default_str(),
      sub->add_option("--stress", o->spec.stress, "Stress class (see `gnv list`)")->capture_default_str(),
      sub->add_option("--seed", o->spec.seed, "Generator seed")
          ->capture_default_str()
          ->check(non_negative_integer()),
      sub->add_option("--save-case", o->save_case, "Save the generated case into this directory"),
  };
  for (CLI::Option* g : add_operator_options(sub, o->spec.affine, o->spec.epilogue)) gen.push_back(g);
  for (CLI::Option* g : gen) case_opt->excludes(g);
  return {sub, [o, sub] {
            o->spec.groups_given = sub->count("--groups") > 0;
            return run_check(*o);
          }};
}

}  // namespace gnv::cli
