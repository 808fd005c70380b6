// Low-rank decomposition of trained weights, initialised from the SVD (Eckart-Young: the best
// rank-r approximation in Frobenius norm).
//
// Spatial decomposition of a kxk convolution W[out, in, kh, kw] (scheme of Jaderberg et al.): view
// W as the matrix M[(in, y), (out, x)] = W[out, in, y, x]; its rank-r SVD M ~ U S V^T gives a
// vertical kx1 convolution v[r, in, kh, 1] = U sqrt(S) followed by a horizontal 1xk convolution
// h[out, r, 1, kw] = sqrt(S) V^T. The pair computes exactly the original convolution at full rank
// min(in*kh, out*kw), with padding (k/2, 0) then (0, k/2) and strides (s, 1) then (1, s).
// We chose the spatial scheme over a 1x1-reduce + kxk pair because it cuts MACs at every rank
// below about half the full rank and keeps the kernel count of each factor small.
#pragma once

#include <torch/torch.h>

namespace adascale::compress {

struct SpatialFactors {
  torch::Tensor v;  // [rank, in, kh, 1]
  torch::Tensor h;  // [out, rank, 1, kw]
};
int64_t full_spatial_rank(const torch::Tensor& conv_weight);
// throws std::invalid_argument for a non-4D weight, grouped shapes or rank < 1
SpatialFactors decompose_spatial(const torch::Tensor& conv_weight, int64_t rank);
// the kxk kernel a factor pair computes (for checks)
torch::Tensor compose_spatial(const SpatialFactors& factors);

// truncated SVD of a linear layer W[out, in] ~ second[out, r] * first[r, in]
struct LinearFactors {
  torch::Tensor first;   // [rank, in]
  torch::Tensor second;  // [out, rank]
};
LinearFactors decompose_linear(const torch::Tensor& weight, int64_t rank);

}  // namespace adascale::compress
