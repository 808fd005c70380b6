#include "compress/low_rank.h"

#include <stdexcept>

namespace adascale::compress {

int64_t full_spatial_rank(const torch::Tensor& w) {
  return std::min(w.size(1) * w.size(2), w.size(0) * w.size(3));
}

SpatialFactors decompose_spatial(const torch::Tensor& w, int64_t rank) {
  if (w.dim() != 4) throw std::invalid_argument("decompose_spatial: weight must be 4-D");
  const int64_t out = w.size(0), in = w.size(1), kh = w.size(2), kw = w.size(3);
  if (rank < 1) throw std::invalid_argument("decompose_spatial: rank must be >= 1");
  rank = std::min(rank, full_spatial_rank(w));
  torch::NoGradGuard no_grad;
  // double precision: the factors of a full-rank decomposition must reproduce W to ~1e-6
  auto m = w.detach().to(torch::kFloat64).permute({1, 2, 0, 3}).reshape({in * kh, out * kw});
  auto [u, s, v] = torch::svd(m, /*some=*/true);
  auto root = s.slice(0, 0, rank).sqrt();
  auto left = u.slice(1, 0, rank) * root.unsqueeze(0);   // [in*kh, r]
  auto right = v.slice(1, 0, rank) * root.unsqueeze(0);  // [out*kw, r]
  SpatialFactors f;
  f.v = left.t().reshape({rank, in, kh, 1}).to(w.dtype()).contiguous();
  f.h = right.t().reshape({rank, out, kw}).permute({1, 0, 2}).reshape({out, rank, 1, kw});
  f.h = f.h.to(w.dtype()).contiguous();
  return f;
}

torch::Tensor compose_spatial(const SpatialFactors& f) {
  // K[o, i, y, x] = sum_r h[o, r, 0, x] * v[r, i, y, 0]
  return torch::einsum("orx,riy->oiyx", {f.h.squeeze(2), f.v.squeeze(3)});
}

LinearFactors decompose_linear(const torch::Tensor& w, int64_t rank) {
  if (w.dim() != 2) throw std::invalid_argument("decompose_linear: weight must be 2-D");
  if (rank < 1) throw std::invalid_argument("decompose_linear: rank must be >= 1");
  rank = std::min(rank, std::min(w.size(0), w.size(1)));
  torch::NoGradGuard no_grad;
  auto [u, s, v] = torch::svd(w.detach().to(torch::kFloat64), true);
  auto root = s.slice(0, 0, rank).sqrt();
  LinearFactors f;
  f.second = (u.slice(1, 0, rank) * root.unsqueeze(0)).to(w.dtype()).contiguous();
  f.first = (v.slice(1, 0, rank) * root.unsqueeze(0)).t().to(w.dtype()).contiguous();
  return f;
}

}  // namespace adascale::compress
