/* classify: runs every branch of a bundle on one constant image and prints the top class.
 * Usage: adascale_classify X.bundle [value] */
#include <stdio.h>
#include <stdlib.h>

#include "adascale.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s X.bundle [pixel value]\n", argv[0]);
    return 2;
  }
  char message[512];
  adascale_runtime* rt = NULL;
  if (adascale_open_ex(argv[1], ADASCALE_BACKEND_XNNPACK, 1, &rt, message, sizeof message) !=
      ADASCALE_OK) {
    fprintf(stderr, "open failed: %s\n", message);
    return 1;
  }
  int64_t dims[4];
  size_t classes = 0, branches = 0;
  adascale_input_shape(rt, dims);
  adascale_class_count(rt, &classes);
  adascale_branch_count(rt, &branches);
  const size_t count = (size_t)(dims[1] * dims[2] * dims[3]);
  float* image = malloc(count * sizeof(float));
  float* logits = malloc((classes ? classes : 1) * sizeof(float));
  const float value = argc > 2 ? (float)atof(argv[2]) : 0.5f;
  for (size_t i = 0; i < count; ++i) image[i] = value;
  int status = 0;
  for (size_t b = 0; b < branches; ++b) {
    adascale_branch_info info;
    adascale_branch_info_at(rt, b, &info);
    if (adascale_select(rt, info.name) != ADASCALE_OK ||
        adascale_run(rt, image, count, logits, classes) != ADASCALE_OK) {
      fprintf(stderr, "%s: %s\n", info.name, adascale_last_error(rt));
      status = 1;
      continue;
    }
    size_t best = 0;
    for (size_t c = 1; c < classes; ++c)
      if (logits[c] > logits[best]) best = c;
    printf("%s: class %zu (logit %.4f) costs %s\n", info.name, best, logits[best], info.costs_json);
  }
  free(image);
  free(logits);
  adascale_close(rt);
  return status;
}
