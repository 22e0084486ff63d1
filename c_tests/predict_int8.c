/* Feeds raw int8 or uint8 data through MXPredCreateEx and MXPredSetInput,
 * as MXNet's prediction API allows, and checks the dequantized output
 * against the FP32 reference stored with the fixture.
 * Usage: predict_int8 CASE_DIR CASE_NAME DTYPE_FLAG */
#include <mxnet/c_predict_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, long *size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  *size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc(*size + 1);
  if (fread(buf, 1, *size, f) != (size_t)*size) exit(2);
  buf[*size] = '\0';
  fclose(f);
  return buf;
}

static const float *find(NDListHandle list, mx_uint len, const char *name, mx_uint *shape, mx_uint *ndim,
                         mx_uint *elems) {
  for (mx_uint i = 0; i < len; i++) {
    const char *key;
    const mx_float *data;
    const mx_uint *dims;
    mx_uint n;
    if (MXNDListGet(list, i, &key, &data, &dims, &n) != 0 || strcmp(key, name) != 0) continue;
    *elems = 1;
    for (mx_uint d = 0; d < n; d++) {
      if (shape) shape[d] = dims[d];
      *elems *= dims[d];
    }
    if (ndim) *ndim = n;
    return data;
  }
  fprintf(stderr, "%s not found in the io file\n", name);
  exit(2);
}

#define CALL(expr)                                                     \
  do {                                                                 \
    if ((expr) != 0) {                                                 \
      fprintf(stderr, "%s failed: %s\n", #expr, MXGetLastError());      \
      return 1;                                                        \
    }                                                                  \
  } while (0)

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s CASE_DIR CASE_NAME DTYPE_FLAG\n", argv[0]);
    return 2;
  }
  int flag = atoi(argv[3]);
  char path[4096];
  long json_size, params_size, io_size;
  snprintf(path, sizeof path, "%s/%s-symbol.json", argv[1], argv[2]);
  char *json = read_file(path, &json_size);
  snprintf(path, sizeof path, "%s/%s-0000.params", argv[1], argv[2]);
  char *params = read_file(path, &params_size);
  snprintf(path, sizeof path, "%s/%s-io.params", argv[1], argv[2]);
  char *io = read_file(path, &io_size);

  NDListHandle list;
  mx_uint len;
  CALL(MXNDListCreate(io, (int)io_size, &list, &len));
  mx_uint shape[8], ndim, elems, one;
  /* The data array's slot holds raw int8/uint8 bytes (MXNDListCreate copies each array's own bytes). */
  const float *data = find(list, len, "data", shape, &ndim, &elems);
  const float *min_data = find(list, len, "min_data", NULL, NULL, &one);
  const float *max_data = find(list, len, "max_data", NULL, NULL, &one);
  mx_uint ref_elems;
  const float *reference = find(list, len, "fp32_output0", NULL, NULL, &ref_elems);

  const char *keys[3] = {"data", "min_data", "max_data"};
  mx_uint indptr[4] = {0, ndim, ndim + 1, ndim + 2};
  mx_uint dims[10];
  memcpy(dims, shape, ndim * sizeof(mx_uint));
  dims[ndim] = 1;
  dims[ndim + 1] = 1;
  const char *dtype_names[1] = {"data"};
  int dtypes[1] = {flag};
  PredictorHandle pred;
  CALL(MXPredCreateEx(json, params, (int)params_size, 1, 0, 3, keys, indptr, dims, 1, dtype_names, dtypes, &pred));
  CALL(MXPredSetInput(pred, "data", data, elems));
  CALL(MXPredSetInput(pred, "min_data", min_data, 1));
  CALL(MXPredSetInput(pred, "max_data", max_data, 1));
  CALL(MXPredForward(pred));

  int out_type = -1;
  CALL(MXPredGetOutputType(pred, 0, &out_type));
  mx_uint *out_shape, out_ndim;
  CALL(MXPredGetOutputShape(pred, 0, &out_shape, &out_ndim));
  mx_uint out_elems = 1;
  for (mx_uint i = 0; i < out_ndim; i++) out_elems *= out_shape[i];
  if (out_elems != ref_elems || out_type != 4) {
    fprintf(stderr, "output: %u elements of dtype %d, expected %u int32 (4)\n", out_elems, out_type, ref_elems);
    return 1;
  }
  int *acc = malloc(out_elems * sizeof(int));
  float range[2];
  CALL(MXPredGetOutput(pred, 0, (float *)acc, out_elems));
  CALL(MXPredGetOutput(pred, 1, &range[0], 1));
  CALL(MXPredGetOutput(pred, 2, &range[1], 1));

  /* int32 accumulators carry real = q * max(|min|, |max|) / 2^31. */
  double scale = fmax(fabs(range[0]), fabs(range[1])) / 2147483648.0;
  double diff = 0, norm = 0;
  for (mx_uint i = 0; i < out_elems; i++) {
    double d = acc[i] * scale - reference[i];
    diff += d * d;
    norm += (double)reference[i] * reference[i];
  }
  double rel = sqrt(diff / (norm > 0 ? norm : 1));
  printf("relative L2 distance to FP32: %.5f\n", rel);
  if (!(rel < 0.02)) {
    fprintf(stderr, "int8 result too far from FP32\n");
    return 1;
  }

  /* A wrong dtype flag for the input is an error, not a crash. */
  PredictorHandle bad;
  int bad_flag = 99;
  if (MXPredCreateEx(json, params, (int)params_size, 1, 0, 3, keys, indptr, dims, 1, dtype_names, &bad_flag,
                     &bad) != -1) {
    fprintf(stderr, "dtype flag 99 accepted\n");
    return 1;
  }
  CALL(MXPredFree(pred));
  CALL(MXNDListFree(list));
  free(acc);
  free(json);
  free(params);
  free(io);
  printf("predict_int8: all checks passed\n");
  return 0;
}
