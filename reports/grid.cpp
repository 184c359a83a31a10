// The presets: documented grids (README "gnv sweep"). The exact oracle is the cost, about 1.3M
// elements/s forward and 0.9M/s backward on one core, once per case (all impls share it), so the
// presets are sized in element-cases (elements x cases, each case once per dtype and layout):
// smoke ~2.3M (seconds), ci ~31M (under 3 minutes on 2 cores, README records the measurement),
// full ~1.3G (20-25 minutes on 2 cores).
#include <charconv>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "gnv/report.h"
#include "gnv/stress.h"

namespace gnv::report {

namespace {

// Every stress class once, offsets by decades from 1e0 to 1e8: the breakdown point needs them all.
std::vector<std::string> all_stresses() {
  std::vector<std::string> v{"normal"};
  for (double k = 1; k <= 1e8; k *= 10) v.push_back(Stress{StressKind::offset, k}.name());
  for (const char* s : {"tiny-var", "huge", "subnormal", "constant", "outlier", "bimodal", "special"})
    v.push_back(s);
  return v;
}

std::vector<std::string> offsets(std::initializer_list<double> ks) {
  std::vector<std::string> v;
  for (double k : ks) v.push_back(Stress{StressKind::offset, k}.name());
  return v;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Small shapes: spatial ranks 0..3, one and many channels per group, N > 1, both affine settings;
// odd extents so that no vector width divides a row. Cheap, so they carry every stress class.
std::vector<ShapeSpec> small_shapes(bool more) {
  std::vector<ShapeSpec> v{
      {"2x32x8x8", "2,32,8,8", {8}, false, 1e-5, "rank 2, 4 channels per group"},
      {"1x6x7", "1,6,7", {3}, true, 1e-5, "rank 1, odd length"},
      {"2x12", "2,12", {4}, false, 1e-5, "rank 0: groups of 3 channels"},
      {"1x8x3x5x7", "1,8,3,5,7", {2}, true, 1e-5, "rank 3, odd extents"},
  };
  if (more) {
    v.push_back({"3x10x9x11", "3,10,9,11", {5}, true, 1e-5, "N=3, odd extents"});
    v.push_back({"1x64x17", "1,64,17", {64}, true, 1e-6, "one channel per group (InstanceNorm)"});
  }
  return v;
}

// Real model shapes (C, G, spatial extents as the models run them), at batch 1 or 2. GroupNorm
// with G = 32 is the default of detection backbones (Wu & He 2018, GN+WS ResNets), of the
// Stable-Diffusion U-Net and VAE (diffusers: norm_num_groups=32, eps 1e-5 in the U-Net, 1e-6 in
// the VAE) and of 3-D video U-Nets.
ShapeSpec resnet(const char* name, const char* shape, const char* note) {
  return {name, shape, {32}, true, 1e-5, note};
}
const ShapeSpec kRes5 = resnet("resnet50-res5", "1,2048,7,7", "ResNet-50 GN stage 5 at 224x224");
const ShapeSpec kRes4 = resnet("resnet50-res4", "1,1024,14,14", "ResNet-50 GN stage 4 at 224x224");
const ShapeSpec kRes3 = resnet("resnet50-res3", "1,512,28,28", "ResNet-50 GN stage 3 at 224x224");
const ShapeSpec kRes2 = resnet("resnet50-res2", "1,256,56,56", "ResNet-50 GN stage 2 at 224x224");
const ShapeSpec kFpnHead = resnet("fpn-head-p6", "2,256,13,20", "Mask R-CNN GN head, FPN level P6 at 800x1216");
const ShapeSpec kFpnP4 = resnet("fpn-head-p4", "1,256,50,76", "Mask R-CNN GN head, FPN level P4 at 800x1216");
const ShapeSpec kSdMid = {"sd-unet-mid", "2,1280,8,8", {32}, true, 1e-5,
                          "SD 1.5 U-Net mid block at 512x512, classifier-free guidance batch"};
const ShapeSpec kSdUp = {"sd-unet-up1", "1,1280,16,16", {32}, true, 1e-5, "SD 1.5 U-Net up block 1 at 512x512"};
const ShapeSpec kSdDown = {"sd-unet-down1", "1,320,64,64", {32}, true, 1e-5, "SD 1.5 U-Net first down block at 512x512"};
const ShapeSpec kSdVae = {"sd-vae-mid", "1,512,64,64", {32}, true, 1e-6, "SD VAE decoder mid block at 512x512"};
const ShapeSpec kVideo = {"video-unet-3d", "1,128,4,16,16", {32}, true, 1e-5,
                          "3-D video U-Net block: 4 frames of 16x16 latents"};
const ShapeSpec kVideoBig = {"video-unet-3d-8f", "1,320,8,32,32", {32}, true, 1e-5,
                             "3-D video U-Net block: 8 frames of 32x32 latents"};

// Error against group size: one tensor, G from C (one channel per group) down to 1 (LayerNorm).
ShapeSpec group_sweep(const char* shape, std::vector<int64_t> groups) {
  return {"groups-" + std::string(shape), shape, std::move(groups), false, 1e-5,
          "the same tensor with G from C to 1"};
}

}  // namespace

std::vector<std::string> preset_names() { return {"smoke", "ci", "full"}; }

Grid preset_grid(std::string_view name) {
  Grid g;
  g.preset = std::string(name);
  for (DType d : kAllDTypes) g.dtypes.emplace_back(gnv::name(d));
  for (Layout l : kAllLayouts) g.layouts.emplace_back(gnv::name(l));
  g.backward = true;
  if (name == "smoke") {
    g.sections = {
        {"small", small_shapes(false), all_stresses(), {0}},
        {"models", {kRes5}, concat({"normal"}, offsets({1e4})), {0}},
    };
  } else if (name == "ci") {
    g.sections = {
        {"small", small_shapes(true), all_stresses(), {0}},
        {"models", {kRes5, kFpnHead, kSdMid, kVideo},
         concat(concat({"normal"}, offsets({1e2, 1e4, 1e6})), {"outlier", "bimodal"}), {0}},
        {"group-size", {group_sweep("1,64,32,32", {64, 16, 4, 1})}, concat({"normal"}, offsets({1e4})), {0}},
    };
  } else if (name == "full") {
    g.sections = {
        {"small", small_shapes(true), all_stresses(), {0, 1, 2, 3}},
        {"models",
         {kRes5, kRes4, kRes3, kRes2, kFpnHead, kFpnP4, kSdMid, kSdUp, kSdDown, kSdVae, kVideo, kVideoBig},
         all_stresses(), {0}},
        {"group-size", {group_sweep("1,64,64,64", {64, 32, 16, 8, 4, 2, 1})},
         concat({"normal"}, offsets({1e2, 1e4, 1e6, 1e8})), {0}},
    };
  } else {
    throw std::invalid_argument(fmt::format("unknown preset '{}' (expected {})", name,
                                            fmt::join(preset_names(), ", ")));
  }
  return g;
}

std::string describe_grid(const Grid& g) {
  std::string s = fmt::format("Preset `{}`: impls {}; dtypes {}; layouts {}; backward {}.\n\n",
                              g.preset, fmt::join(g.impls, ", "), fmt::join(g.dtypes, ", "),
                              fmt::join(g.layouts, ", "), g.backward ? "on" : "off");
  for (const Section& sec : g.sections) {
    std::vector<std::string> shapes;
    for (const ShapeSpec& sh : sec.shapes)
      shapes.push_back(fmt::format("{} ({}, G={}{})", sh.name, sh.shape, fmt::join(sh.groups, "/"),
                                   sh.affine ? ", affine" : ""));
    s += fmt::format("- **{}**: shapes {}; stresses {}; seeds {}\n", sec.name, fmt::join(shapes, "; "),
                     fmt::join(sec.stresses, ", "), fmt::join(sec.seeds, ", "));
  }
  return s;
}

std::vector<CaseSpec> expand_cases(const Grid& g) {
  std::vector<CaseSpec> out;
  for (const std::string& ds : g.dtypes) {
    const DType d = parse_dtype(ds);
    for (const std::string& ls : g.layouts) {
      const Layout l = parse_layout(ls);
      for (const Section& sec : g.sections) {
        for (const ShapeSpec& sh : sec.shapes) {
          for (int64_t G : sh.groups) {
            Problem p;
            parse_shape(sh.shape, p);
            p.G = G;
            p.eps = sh.eps;
            p.affine = sh.affine;
            p.dtype = d;
            p.layout = l;
            p.validate();
            for (const std::string& st : sec.stresses) {
              const std::string canonical = parse_stress(st).name();
              for (uint64_t seed : sec.seeds)
                out.push_back({out.size(), sec.name, sh.name, p, canonical, seed});
            }
          }
        }
      }
    }
  }
  return out;
}

Shard parse_shard(std::string_view s) {
  const auto bad = [&] {
    return std::invalid_argument(fmt::format("--shard '{}': expected k/n with 1 <= k <= n", s));
  };
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) throw bad();
  Shard sh;
  const auto num = [&](std::string_view t, int& v) {
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size()) throw bad();
  };
  num(s.substr(0, slash), sh.index);
  num(s.substr(slash + 1), sh.count);
  if (sh.count < 1 || sh.index < 1 || sh.index > sh.count) throw bad();
  return sh;
}

}  // namespace gnv::report
